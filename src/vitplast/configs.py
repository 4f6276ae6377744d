"""Config dataclasses: one per concern, validated on construction, help text in field metadata.

Every field of a vitplast config is declared with :func:`option`, which stores the option's help text and
its constraints in the field's metadata::

    @dataclass(frozen=True)
    class MyConfig:
        lr: float = option(1e-3, help="Peak learning rate.", gt=0)
        mode: str = option("embedding", help="Estimator mode.", choices=("embedding", "insitu"))

        def __post_init__(self) -> None:
            validate(self)

:func:`validate` checks every field against its declared type (``int``, ``float``, ``str``, ``bool``, a
``tuple`` of those, or ``X | None``), rejects NaN and infinities in floats unless ``finite=False``, and
applies ``ge``/``gt``/``le``/``lt``/``choices``. A violation raises :class:`~vitplast.errors.VitplastError`
whose one-line message names the option as the command line spells it (``--warmup-steps``) or, for
mappings, as the YAML key (``train.lr``). :func:`from_mapping` builds a config from a parsed YAML/JSON
mapping generically: unknown keys are refused by name, lists become tuples, ints are accepted for floats,
and nested config dataclasses are built recursively. The CLI and the sweep YAML read their defaults and
help text from these fields, so each default lives in exactly one place.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import os
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, Union

from vitplast.errors import VitplastError

T = TypeVar("T")

#: The micro-ViT checkpoints shipped in the package (model specs; ``vitplast pretrain --name``).
BUNDLED_MODELS: tuple[str, ...] = ("micro", "micro-long")


def check_model_spec(spec: str, label: str = "--model") -> str:
    """``spec`` if it has the form of a model spec (:data:`MODEL_HELP`: a bundled name, ``timm:ARCH``,
    ``timm:ARCH@FILE``, ``hf:NAME`` or an existing folder), else a one-line :class:`VitplastError`. Whether
    the model loads is checked when it is loaded; this check needs no model library."""
    prefix, sep, rest = spec.partition(":")
    if spec in BUNDLED_MODELS or (sep and prefix in ("timm", "hf") and rest.partition("@")[0]) or os.path.isdir(spec):
        return spec
    raise VitplastError(f"{label}: unknown model spec {spec!r}: use {' or '.join(BUNDLED_MODELS)}, timm:ARCH, "
                        "timm:ARCH@FILE.safetensors, hf:ORG/NAME or hf:DIR")


#: Help text of every ``--model`` option (the specs :func:`vitplast.models.load_model` accepts).
MODEL_HELP = (f"Model spec: {' or '.join(BUNDLED_MODELS)} (bundled), timm:ARCH, timm:ARCH@FILE.safetensors, "
              "hf:ORG/NAME or hf:DIR.")

_NO_DEFAULT: Any = dataclasses.MISSING

#: Seeds are unsigned 64-bit integers: the largest range numpy's and torch's generators accept.
SEED_MAX = 2**64 - 1
#: Device names every command accepts (:func:`check_device`; availability is checked when the device is used).
DEVICE_HELP = "auto (CUDA when available), cpu, cuda, cuda:N or mps."
_DEVICE = re.compile(r"(auto|cpu|mps|cuda(:[0-9]+)?)")


def option(
    default: Any = _NO_DEFAULT,
    *,
    help: str,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: Sequence[Any] | None = None,
    finite: bool = True,
    check: Callable[[str, Any], None] | None = None,
    default_factory: Any = _NO_DEFAULT,
) -> Any:
    """A dataclass field carrying its help text and constraints in ``metadata``.

    ``ge``/``gt``/``le``/``lt`` bound numbers (each element of a tuple; compared exactly, also for integers
    beyond float precision), ``choices`` lists the allowed values (each element of a tuple), ``finite=False``
    admits NaN/inf floats, ``check(label, value)`` is the parser of a kind of value (:func:`check_device`).
    ``None`` is always allowed for an ``X | None`` field and skips the checks.
    """
    if not help:
        raise ValueError("every option needs help text")
    meta = {"help": help, "ge": ge, "gt": gt, "le": le, "lt": lt, "choices": tuple(choices) if choices else None,
            "finite": finite, "check": check}
    if default_factory is not _NO_DEFAULT:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def seed_option(default: int = 0, *, help: str) -> Any:
    """A seed field: an integer in ``[0, SEED_MAX]`` (every command's ``--seed`` and the sweep's seeds)."""
    return option(default, help=help, ge=0, le=SEED_MAX)


def check_device(label: str, value: Any) -> None:
    """The device parser: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``; anything else (also an empty
    name) is a one-line :class:`VitplastError`. Whether the device exists is checked where it is used
    (:func:`vitplast.runtime.resolve_device`)."""
    if not isinstance(value, str) or not _DEVICE.fullmatch(value):
        raise VitplastError(f"{label} must be one of auto, cpu, cuda, cuda:N, mps, got {value!r}")


def device_option(default: str = "auto", *, help: str = DEVICE_HELP) -> Any:
    """A device field, checked by :func:`check_device`."""
    return option(default, help=help, check=check_device)


def split_list(text: str, label: str) -> tuple[str, ...]:
    """The list parser of every comma-list option: ``"a,b"``, ``"a, b"`` or ``"a b"`` -> ``("a", "b")``.

    An empty text is the empty list; an empty item (``"a,,b"``, a leading or trailing comma) is refused
    in one line naming ``label``, never silently dropped.
    """
    if not text.strip():
        return ()
    items = tuple(re.split(r"\s*,\s*|\s+", text.strip()))
    if "" in items:
        raise VitplastError(f"{label} has an empty item in {text!r}: separate the values by single commas")
    return items


N = TypeVar("N", int, float)


def parse_numbers(text: str, label: str, cast: type[N]) -> tuple[N, ...]:
    """:func:`split_list` with every item read as ``cast`` (``int`` or ``float``; ``1e-3`` is a float)."""
    try:
        return tuple(cast(x) for x in split_list(text, label))
    except ValueError:
        what = "integers" if cast is int else "numbers"
        raise VitplastError(f"{label} takes a comma list of {what}, got {text!r}") from None


def help_of(cls: type, name: str) -> str:
    """The help text of field ``name`` of config class ``cls``."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            return str(f.metadata.get("help", ""))
    raise KeyError(name)


def default_of(cls: type, name: str) -> Any:
    """The default value of field ``name`` of config class ``cls`` (the one place a default lives)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            raise KeyError(f"{cls.__name__}.{name} has no default")
    raise KeyError(name)


def cli_name(name: str) -> str:
    """``warmup_steps`` -> ``--warmup-steps``."""
    return "--" + name.replace("_", "-")


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _split_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _type_name(tp: Any) -> str:
    base, optional = _split_optional(tp)
    if typing.get_origin(base) is tuple:
        inner = typing.get_args(base)[0]
        name = f"a list of {getattr(inner, '__name__', str(inner))}"
    else:
        name = getattr(base, "__name__", str(base))
    return f"{name} or null" if optional else name


def _scalar_ok(value: Any, tp: Any) -> bool:
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True  # Literal, Any, ...: not checked here


def _check_value(label: str, value: Any, meta: Mapping[str, Any]) -> None:
    if isinstance(value, float) and meta.get("finite", True) and not math.isfinite(value):
        raise VitplastError(f"{label} must be a finite number, got {value}")
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise VitplastError(f"{label} must be one of {', '.join(map(str, choices))}, got {value!r}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        for key, op, word in (("ge", operator.ge, ">="), ("gt", operator.gt, ">"), ("le", operator.le, "<="),
                              ("lt", operator.lt, "<")):
            bound = meta.get(key)
            if bound is not None and not op(value, bound):
                raise VitplastError(f"{label} must be {word} {bound}, got {value}")
    check = meta.get("check")
    if check is not None:
        check(label, value)


def _check_field(label: str, value: Any, hint: Any, meta: Mapping[str, Any]) -> None:
    base, optional = _split_optional(hint)
    if value is None:
        if optional:
            return
        raise VitplastError(f"{label} must be {_type_name(hint)}, got null")
    if dataclasses.is_dataclass(base):
        return  # nested configs validate themselves on construction
    if typing.get_origin(base) is tuple:
        inner = typing.get_args(base)[0]
        if not isinstance(value, tuple) or not all(_scalar_ok(v, inner) for v in value):
            raise VitplastError(f"{label} must be {_type_name(base)}, got {value!r}")
        for v in value:
            _check_value(label, v, meta)
        return
    if not _scalar_ok(value, base):
        raise VitplastError(f"{label} must be {_type_name(base)}, got {value!r}")
    _check_value(label, value, meta)


def validate(obj: Any, *, prefix: str | None = None) -> None:
    """Check every field of config ``obj`` against its type and metadata; raise on the first violation.

    Labels are CLI option names (``--lr``) unless ``prefix`` is given, in which case they are YAML keys
    (``prefix.lr``).
    """
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        label = f"{prefix}.{f.name}" if prefix is not None else cli_name(f.name)
        _check_field(label, getattr(obj, f.name), hints[f.name], f.metadata)


def from_mapping(cls: type[T], data: Mapping[str, Any], *, where: str) -> T:
    """Build config ``cls`` from a parsed mapping; errors name ``where.key`` and the expected type.

    Unknown keys are refused; lists become tuples; ints are accepted where floats are expected; nested
    config dataclasses are built recursively from nested mappings. Missing keys take the field default.
    """
    if not isinstance(data, Mapping):
        raise VitplastError(f"{where} must be a mapping, got {type(data).__name__}")
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise VitplastError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(fields))})")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        base, _ = _split_optional(hints[key])
        label = f"{where}.{key}"
        if dataclasses.is_dataclass(base) and isinstance(base, type) and value is not None:
            kwargs[key] = from_mapping(base, value, where=label)
            continue
        if typing.get_origin(base) is tuple and isinstance(value, list | tuple):
            value = tuple(value)
        if base is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        _check_field(label, value, hints[key], fields[key].metadata)
        kwargs[key] = value
    try:
        obj = cls(**kwargs)
    except TypeError as exc:  # a required field without a value
        raise VitplastError(f"{where}: {exc}") from None
    except VitplastError as exc:
        raise VitplastError(f"{where}: {exc}") from None
    return obj
