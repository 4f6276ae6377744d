"""Command-line options generated from config fields: one declaration per option, in the config.

A command lists the config classes whose fields are its options; :func:`options_from` writes one typer option
per field (name :func:`~vitplast.configs.cli_name`, help and default from the field, type from its
annotation) and hands the command the values, built into the config or as a dict::

    @app.command()
    @options_from(Fields(AnalyzeConfig, "cfg", exclude=("rtol",)))
    def analyze(cfg: AnalyzeConfig, out: Path = typer.Option(...)) -> None: ...

Types: ``int``, ``float``, ``str`` and ``X | None`` are typed options; a ``bool`` is a flag (``--name``, or
``--name/--no-name`` when it defaults to true); a tuple is a comma list read by
:func:`~vitplast.configs.split_list` (numbers by :func:`~vitplast.configs.parse_numbers`). A field named in
``unset`` defaults to ``None`` (a data recipe may set it, :meth:`vitplast.train.TrainConfig.for_data`); its help
shows the field's default and the recipes' values, and only the settings given reach the command.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import typer

from vitplast.configs import _split_optional, cli_name, parse_numbers, split_list

#: The attribute of a generated command that maps each generated parameter to ``(config class, field, unset)``.
GENERATED = "config_fields"


@dataclass(frozen=True)
class Fields:
    """The options a command takes from config class ``cls``, handed to its parameter ``into``.

    ``only``/``exclude`` select fields; ``rename`` maps a field to its option's name (``{"target": "data"}``);
    ``unset`` fields default to ``None`` with the field's default and ``recipes`` values in the help; ``text``
    fields take their tuple as the raw text (the config parses it); ``build=False`` hands a dict of the values
    instead of ``cls(**values)``.
    """

    cls: type
    into: str
    only: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    rename: Mapping[str, str] = field(default_factory=dict)
    unset: tuple[str, ...] = ()
    recipes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    text: tuple[str, ...] = ()
    build: bool = True

    def fields(self) -> list[dataclasses.Field[Any]]:
        chosen = [f for f in dataclasses.fields(self.cls) if f.name not in self.exclude]
        if self.only is not None:
            by_name = {f.name: f for f in chosen}
            chosen = [by_name[n] for n in self.only]
        return chosen

    def param(self, name: str) -> str:
        return self.rename.get(name, name)


def _shown(value: Any) -> Any:
    """A default as the command line spells it (a tuple as its comma list)."""
    return ",".join(map(str, value)) if isinstance(value, tuple) else value


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return ...  # required


def unset_help(spec: Fields, f: dataclasses.Field[Any]) -> str:
    """The help of an ``unset`` option: the field's help, then its default (unless ``None``: the help says what
    that means) and the value each recipe gives it, in brackets."""
    default = _default(f)
    shown = [] if default is None else [f"default: {_shown(default)}"]
    shown += [f"{k}* data: {v[f.name]}" for k, v in spec.recipes.items() if f.name in v]
    # escaped: the help is rich markup, where a bare "[default: ...]" is read as a style tag and not shown
    return f"{f.metadata['help']} \\[{'; '.join(shown)}]" if shown else str(f.metadata["help"])


def _parameter(spec: Fields, f: dataclasses.Field[Any], hint: Any) -> inspect.Parameter:
    base, optional = _split_optional(hint)
    unset = f.name in spec.unset
    default = None if unset else _shown(_default(f))
    is_list = typing.get_origin(base) is tuple
    kind: Any = str if is_list else base
    name = cli_name(spec.param(f.name))
    if kind is bool and (default is True or unset):
        name = f"{name}/--no-{name[2:]}"
    info = typer.Option(default, name, help=unset_help(spec, f) if unset else f.metadata["help"],
                        show_default=not unset)
    annotation = kind | None if (optional or unset) else kind
    return inspect.Parameter(spec.param(f.name), inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation)


def _read(spec: Fields, f: dataclasses.Field[Any], hint: Any, value: Any) -> Any:
    """An option's value as the config field takes it (a comma list as a tuple)."""
    base, _ = _split_optional(hint)
    if not isinstance(value, str) or typing.get_origin(base) is not tuple or f.name in spec.text:
        return value
    label = cli_name(spec.param(f.name))
    inner = typing.get_args(base)[0]
    return parse_numbers(value, label, inner) if inner in (int, float) else split_list(value, label)


def options_from(*specs: Fields) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a command: each ``spec``'s parameter is replaced by one option per field (in its place)."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        hints = typing.get_type_hints(func, include_extras=True)
        own = inspect.signature(func).parameters
        missing = [s.into for s in specs if s.into not in own]
        if missing:
            raise ValueError(f"{func.__name__} has no parameter {missing[0]!r} to receive its options")
        field_hints = [typing.get_type_hints(s.cls) for s in specs]
        generated: dict[str, tuple[type, str, bool]] = {}
        params: list[inspect.Parameter] = []
        for p in own.values():
            i = next((i for i, s in enumerate(specs) if s.into == p.name), None)
            if i is None:
                params.append(p.replace(annotation=hints.get(p.name, p.annotation), kind=inspect.Parameter.KEYWORD_ONLY))
                continue
            spec = specs[i]
            for f in spec.fields():
                name = spec.param(f.name)
                if name in generated or name in own:
                    raise ValueError(f"{func.__name__}: option {name!r} declared twice")
                params.append(_parameter(spec, f, field_hints[i][f.name]))
                generated[name] = (spec.cls, f.name, f.name in spec.unset)

        @functools.wraps(func)
        def command(**kwargs: Any) -> Any:
            for spec, types in zip(specs, field_hints, strict=True):
                values = {}
                for f in spec.fields():
                    value = kwargs.pop(spec.param(f.name))
                    if not (value is None and f.name in spec.unset):
                        values[f.name] = _read(spec, f, types[f.name], value)
                kwargs[spec.into] = spec.cls(**values) if spec.build else values
            return func(**kwargs)

        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        setattr(command, GENERATED, generated)
        return command

    return decorate
