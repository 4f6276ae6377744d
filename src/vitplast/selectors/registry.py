"""The selectors' registry: each selector's name, table order, needs and formula (docs/selectors.md).

A selector is one function decorated with :func:`register` in any module of this package. Nothing else lists
it: :func:`selector_index` reads the ``@register(...)`` decorators from the package's sources (nothing is
imported, so the command line checks names and orders tables without loading torch), and :func:`get_selector`
imports the module that defines a selector when it is first asked for (that fills :data:`REGISTRY`).
"""

from __future__ import annotations

import ast
import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from vitplast.errors import VitplastError


@dataclass(frozen=True)
class SelectorInfo:
    """What the registry knows of a selector besides its function.

    ``order``: its place in tables and in the default list (lower first); ``formula``: its score of group g, as
    the table of docs/selectors.md writes it; ``needs_source``: it pairs source (pretraining-like) images with
    target images; ``block_only``: it scores whole blocks and no group (it runs at block granularity only);
    ``module``: the module that defines it.
    """

    name: str
    order: int
    formula: str
    needs_source: bool = False
    block_only: bool = False
    module: str = ""


#: A selector: ``(vit, data) -> Scores`` (types in :mod:`vitplast.selectors.base`).
SelectorFn = Callable[[Any, Any], Any]
#: name -> (function, info) of every selector whose module has been imported. Filled by :func:`register`.
REGISTRY: dict[str, tuple[SelectorFn, SelectorInfo]] = {}


def register(name: str, *, order: int, formula: str, needs_source: bool = False,
             block_only: bool = False) -> Callable[[SelectorFn], SelectorFn]:
    """Decorator adding a selector to :data:`REGISTRY`. Its arguments must be literals: :func:`selector_index`
    reads them from the source."""

    def add(fn: SelectorFn) -> SelectorFn:
        REGISTRY[name] = (fn, SelectorInfo(name, order, formula, needs_source, block_only, fn.__module__))
        return fn

    return add


@functools.cache
def selector_index() -> dict[str, SelectorInfo]:
    """Every selector declared in this package, in table order, read from the sources without importing them."""
    found: list[SelectorInfo] = []
    for path in sorted(Path(__file__).parent.glob("*.py")):
        module = f"{__package__}.{path.stem}"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef):
                found += [_info(d, module) for d in node.decorator_list if _is_register(d)]
    names = [i.name for i in found]
    orders = [i.order for i in found]
    if len(set(names)) != len(names) or len(set(orders)) != len(orders):
        raise RuntimeError(f"selector names and orders must be unique: {sorted(zip(orders, names, strict=True))}")
    return {i.name: i for i in sorted(found, key=lambda i: i.order)}


def _is_register(deco: ast.expr) -> bool:
    return isinstance(deco, ast.Call) and isinstance(deco.func, ast.Name) and deco.func.id == "register"


def _info(deco: Any, module: str) -> SelectorInfo:
    kwargs = {k.arg: ast.literal_eval(k.value) for k in deco.keywords}
    return replace(SelectorInfo(ast.literal_eval(deco.args[0]), **kwargs), module=module)


def selector_info(name: str) -> SelectorInfo:
    """The registry's entry of selector ``name``; an unknown name is a :class:`VitplastError` listing the known ones."""
    index = selector_index()
    if name not in index:
        raise VitplastError(f"unknown selector {name!r}: use one of {', '.join(index)}")
    return index[name]


def get_selector(name: str) -> SelectorFn:
    """The selector called ``name``: one registered already, or one of the package (its module is imported on
    first use); unknown names as :func:`selector_info`."""
    if name not in REGISTRY:
        importlib.import_module(selector_info(name).module)
    return REGISTRY[name][0]


def load_all() -> dict[str, tuple[SelectorFn, SelectorInfo]]:
    """:data:`REGISTRY` with every selector of :func:`selector_index` imported, in table order."""
    for name in selector_index():
        get_selector(name)
    return {name: REGISTRY[name] for name in selector_index()}
