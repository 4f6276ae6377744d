"""Reading files back: one function per format, each refusing a bad file with one line that names it.

Every file a command reads back (a run's ``config.json``, ``result.json`` and ``metrics.jsonl``, a sweep's
``plan.json``, spec and tables, selector scores) may be truncated, damaged or hostile. The readers here decode
UTF-8 strictly and check the shape before anything uses the content:

* :func:`read_json` -- one JSON object (a mapping) nested at most :data:`MAX_DEPTH` levels deep;
* :func:`read_jsonl` -- one JSON object per line; only the last line may be cut (an interrupted append), it
  is dropped;
* :func:`read_yaml` -- safe YAML (no tags that build objects) without aliases or anchors (an alias bomb cannot
  expand) and without duplicate mapping keys; ``1e-3`` reads as a number as in YAML 1.2;
* :func:`read_table` -- a CSV table with the columns a caller requires, number columns holding numbers.

Each raises :class:`~vitplast.errors.VitplastError` (``FILE is not valid JSON (...)``, ``FILE lacks the
column(s) ...``) instead of a traceback. The catalogue of refusals is in ``docs/robustness.md``.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vitplast.errors import VitplastError

if TYPE_CHECKING:
    import pandas as pd

#: Deepest nesting of lists and mappings accepted in a JSON or YAML file (ours nest at most 5 levels).
MAX_DEPTH = 32


def read_text(path: str | Path) -> str:
    """The UTF-8 text of ``path``; a missing, unreadable or non-UTF-8 file -> one-line error naming it."""
    p = Path(path)
    if not p.is_file():
        raise VitplastError(f"{p} does not exist" if not p.exists() else f"{p} is not a file")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise VitplastError(f"cannot read {p}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise VitplastError(f"{p} is not UTF-8 text (byte {exc.start}): damaged or not a vitplast file") from None


#: ``fields`` values of :func:`read_json`: a number (``true``/``false`` are not), or a number or ``null``.
NUMBER = (int, float)
NUMBER_OR_NULL = (int, float, type(None))


def read_json(path: str | Path, fields: Mapping[str, type | tuple[type, ...]] | None = None) -> dict[str, Any]:
    """The JSON object (mapping) in ``path`` (see the module docstring for what is refused). Each key of
    ``fields`` must be present with a value of the given type(s) (``type(None)`` admits ``null``; a boolean is
    not a number)."""
    p = Path(path)
    data = _json_object(read_text(p), p)
    for key, kinds in (fields or {}).items():
        kinds = kinds if isinstance(kinds, tuple) else (kinds,)
        if key not in data:
            raise VitplastError(f"{p} lacks the key {key!r}: not a complete vitplast file")
        value = data[key]
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise VitplastError(f"{p}: {key!r} must be {' or '.join(_NAMES.get(k, k.__name__) for k in kinds)}, "
                                f"not {_kind(value)}")
    return data


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a JSON-lines file (one object per line; blank lines skipped); a missing file has none.

    A last line that is not valid JSON was cut by an interrupted append and is dropped; an invalid line before
    the last one means the file is damaged and is refused."""
    p = Path(path)
    if not p.exists():
        return []
    lines = [(k, ln) for k, ln in enumerate(read_text(p).splitlines(), 1) if ln.strip()]
    rows = []
    for i, (k, line) in enumerate(lines):
        if i == len(lines) - 1 and not _is_json(line):
            break  # cut by an interrupted append
        rows.append(_json_object(line, p, f" line {k}"))
    return rows


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return False
    return True


def _json_object(text: str, path: Path, where: str = "") -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise VitplastError(f"{path}{where} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}): "
                            "truncated or damaged") from None
    except RecursionError:  # nested beyond Python's recursion limit
        raise VitplastError(f"{path}{where} is nested more than {MAX_DEPTH} levels deep") from None
    if not isinstance(data, dict):
        raise VitplastError(f"{path}{where} must hold a JSON object, not {_kind(data)}")
    check_depth(data, path)
    return data


def check_depth(data: Any, path: str | Path) -> None:
    """Refuse ``data`` nested more than :data:`MAX_DEPTH` levels of lists and mappings (iteratively: never
    recurses, so any depth is measured)."""
    stack = [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise VitplastError(f"{path} is nested more than {MAX_DEPTH} levels deep")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


_NAMES: dict[type, str] = {dict: "an object", list: "a list", str: "a string", int: "an integer",
                           float: "a number", bool: "a boolean", type(None): "null"}


def _kind(value: Any) -> str:
    return _NAMES.get(type(value), type(value).__name__)


# --- YAML ------------------------------------------------------------------------------------------------------


def read_yaml(path: str | Path) -> Any:
    """The document of the YAML file ``path``, read safely (module docstring): plain data only, no aliases or
    anchors, no duplicate keys, at most :data:`MAX_DEPTH` levels; refusals name the file, line and key."""
    import yaml

    p = Path(path)
    text = read_text(p)
    try:
        data = yaml.load(text, Loader=_yaml_loader())  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        what = " ".join(f"{exc.context or ''} {exc.problem or ''}".split())
        syntax = not isinstance(exc, yaml.composer.ComposerError | yaml.constructor.ConstructorError)
        raise VitplastError(f"{p}{where}: {'not valid YAML: ' if syntax else ''}{what}") from None
    except yaml.YAMLError as exc:
        raise VitplastError(f"{p} is not valid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise VitplastError(f"{p} is nested more than {MAX_DEPTH} levels deep") from None
    check_depth(data, p)
    return data


_YAML_FLOAT = re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")


def _yaml_loader() -> Any:
    """A ``yaml.SafeLoader`` that refuses aliases, anchors and duplicate keys and reads ``1e-3`` as a float."""
    import yaml

    class Loader(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                raise yaml.composer.ComposerError(
                    None, None, "YAML anchors and aliases (&name, *name) are not allowed: write the value out",
                    event.start_mark)
            return super().compose_node(parent, index)

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, Mapping | list):
                    raise yaml.constructor.ConstructorError(None, None, "a mapping key must be a plain value",
                                                            key_node.start_mark)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (each key may appear once)", key_node.start_mark)
                seen.add(key)
            return super().construct_mapping(node, deep)

    Loader.add_implicit_resolver("tag:yaml.org,2002:float", _YAML_FLOAT, list("-+0123456789"))
    return Loader


# --- CSV -------------------------------------------------------------------------------------------------------

#: ``(columns, number columns)`` of the CSV tables that commands read back (:func:`read_table`): an analysis's
#: ``plasticity.csv`` and ``bounds.csv``, and a sweep's ``selectors/scores.csv``.
PLASTICITY_TABLE = (("layer", "component", "mean"), ("layer", "mean"))
BOUNDS_TABLE = (("layer", "component", "variant", "bound", "rigorous"), ("layer", "bound"))
SCORES_TABLE = (("model", "dataset", "selector", "group", "score"), ("score",))


def read_table(path: str | Path, columns: Sequence[str], numbers: Sequence[str] = ()) -> pd.DataFrame:
    """The CSV table in ``path`` with at least ``columns``; each of ``numbers`` (a subset) holds numbers or
    empty cells (read as NaN). Refused in one line: not UTF-8, not a CSV table, a missing column, text in a
    number column (naming the column, the row and the value)."""
    import pandas as pd

    p = Path(path)
    read_text(p)  # existence, readability and UTF-8, with their messages
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)  # a row longer than the header: refused
            table = pd.read_csv(p, encoding="utf-8", index_col=False, dtype={c: str for c in columns if c not in numbers})
    except pd.errors.EmptyDataError:
        raise VitplastError(f"{p} is empty: expected a CSV table with the columns {', '.join(columns)}") from None
    except (ValueError, pd.errors.ParserError, pd.errors.ParserWarning) as exc:
        raise VitplastError(f"{p} is not a readable CSV table ({' '.join(str(exc).split())[:160]})") from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise VitplastError(f"{p} lacks the column(s) {', '.join(missing)} (expected {', '.join(columns)})")
    for c in numbers:
        col = table[c]
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            continue
        boolean = pd.api.types.is_bool_dtype(col)  # True/False cells: not numbers
        values = pd.to_numeric(col.astype(str) if boolean else col, errors="coerce")
        bad = values.isna() & col.notna()
        if bad.any():
            row = int(bad.to_numpy().argmax())
            raise VitplastError(f"{p} column {c!r} must hold numbers, row {row + 1} holds {col.iloc[row]!r}")
        table[c] = values
    return table
