"""Trainable units: a component of chosen blocks, written ``mha@8-11`` (docs/selectors.md, "Units").

A training choice (``--train``, a sweep group, :func:`vitplast.export.select`) is ``full``, ``ln-control`` alone,
or a comma list of items, each a whole group (``embed ln1 mha ln2 fc1 fc2``: every block) or a *unit set*
``COMPONENT@BLOCKS`` (``ln1 mha ln2 fc1 fc2`` of the listed blocks only, 0 = the block nearest the input).
The grammar, with ``,`` separating parts::

    choice  := part ("," part)*
    part    := NAME | NAME "@" INDEX | INDEX          INDEX := INT | INT "-" INT   (inclusive, a <= b)

A part that is a bare ``INDEX`` continues the block list of the unit set before it: ``ln1@0,2,4,mha`` is
``ln1`` in blocks 0, 2 and 4 plus ``mha`` in every block, and ``mha@8-11,ln2`` is ``mha`` in blocks 8 to 11
plus ``ln2``. Naming a component twice, or a block twice, is an error, as are ``full@2`` and ``ln-control@1``
(they take no block list), ``embed@1`` (the embedding belongs to no block) and an index that is not a
non-negative integer.

Where one option lists several choices (``--groups`` of ``vitplast sweep`` and ``vitplast landscape``),
:func:`split_choices` splits it: a comma followed by a component name starts the next choice, a comma followed
by a block index continues the unit set, and ``+`` joins parts into one choice (``ln1@0,2,4,mha`` is two
choices, ``mha@8-11+ln2,fc1`` two). Error messages name the option the choice came from.

The canonical form (:func:`parse_train`) lists the items in group order, each unit set's blocks ascending
with runs of consecutive blocks written ``a-b``. Block indices are checked against the model once its depth
is known (:func:`resolve`), which also rewrites a unit set covering every block as the whole group, so
``mha@0-11`` on a 12-block model is ``mha`` (same config, same run id). This module imports no torch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from vitplast.components import COMPONENTS, LN_CONTROL, SELECTABLE, TRAINABLE_CHOICES
from vitplast.configs import split_list
from vitplast.errors import VitplastError

_INDEX = re.compile(r"(\d+)(?:-(\d+))?")
#: component -> its blocks (ascending), or ``None`` for every block.
Units = dict[str, tuple[int, ...] | None]


def _indices(text: str, unit: str) -> list[int]:
    m = _INDEX.fullmatch(text.strip())
    if m is None:
        raise VitplastError(f"{unit!r}: block {text.strip()!r} is not a block index (INT or INT-INT, from 0)")
    lo, hi = int(m[1]), int(m[2] if m[2] is not None else m[1])
    if hi < lo:
        raise VitplastError(f"{unit!r}: the block range {lo}-{hi} runs backwards (write {hi}-{lo})")
    return list(range(lo, hi + 1))


def _head(name: str, spec: str, label: str, allowed: Sequence[str]) -> None:
    if name in allowed:
        return
    if tuple(allowed) != TRAINABLE_CHOICES:
        raise VitplastError(f"{label} {name!r} is not a component group: use one of {' '.join(allowed)}, "
                            f"each but embed optionally @BLOCKS (e.g. mha@8-11)")
    if name == "head":
        raise VitplastError(f"unknown trainable group 'head' in {spec!r} (the head is always trained)")
    raise VitplastError(f"unknown trainable group {name!r} in {spec!r}: use 'full', 'ln-control' or a comma "
                        f"list of {' '.join(SELECTABLE)}, each optionally @BLOCKS (e.g. mha@8-11)")


def _is_block(part: str) -> bool:
    """Whether a part is (or tries to be) a block index, which continues the unit set before it."""
    return bool(_INDEX.fullmatch(part)) or part[:1] in tuple("-0123456789")


def _parts(spec: str | Sequence[str]) -> list[str]:
    items = [spec] if isinstance(spec, str) else [str(s) for s in spec]
    return [p.strip() for item in items for p in item.split(",")]


def parse_units(spec: str | Sequence[str], label: str = "--train", allowed: Sequence[str] = TRAINABLE_CHOICES) -> Units:
    """The components of a choice (module grammar) with their blocks, in group order; ``full`` and
    ``ln-control`` map to ``None``. Raises :class:`VitplastError` on any error of the grammar; messages name
    the option ``label`` the choice came from, and a name outside ``allowed`` is refused."""
    try:
        return _parse_units(spec, label, allowed)
    except VitplastError as exc:
        msg = str(exc)
        raise VitplastError(msg if msg.startswith(label) else f"{label}: {msg}") from None


def _parse_units(spec: str | Sequence[str], label: str, allowed: Sequence[str]) -> Units:
    text = spec if isinstance(spec, str) else ",".join(str(s) for s in spec)
    chosen: dict[str, list[int] | None] = {}
    last: str | None = None
    if not text.strip():
        raise VitplastError(f"{label} needs {_needs(allowed)}")
    for part in _parts(spec):
        if not part:
            raise VitplastError(f"{label} has an empty item in {text!r}: separate the units by single commas")
        if _is_block(part):
            if last is None or chosen[last] is None:
                raise VitplastError(f"{text!r}: block {part!r} follows no COMPONENT@BLOCKS unit")
            blocks = _indices(part, last)
        else:
            name, at, rest = part.partition("@")
            name = name.strip()
            if not name:
                raise VitplastError(f"{part!r} names no component: write COMPONENT@BLOCKS, e.g. mha@{rest.strip() or 0}")
            _head(name, text, label, allowed)
            if name in chosen:
                raise VitplastError(f"{text!r} names {name!r} twice: list its blocks once (e.g. {name}@0,2,4)")
            if at and name not in COMPONENTS:
                why = {"full": "trains every parameter", LN_CONTROL: "is a control group drawn from every block",
                       "embed": "belongs to no block"}[name]
                raise VitplastError(f"{part!r}: {name!r} {why}, it takes no block list")
            if at and not rest.strip():
                raise VitplastError(f"{part!r} names no block: write {name}@INDEX, e.g. {name}@0 or {name}@0-3")
            chosen[name] = None if not at else []
            last = name
            if not at:
                continue
            blocks = _indices(rest, name)
        have = chosen[last]
        assert have is not None
        twice = sorted(set(have) & set(blocks))
        if twice or len(set(blocks)) != len(blocks):
            raise VitplastError(f"{text!r} names block {twice[0] if twice else blocks[0]} of {last!r} twice")
        have.extend(blocks)
    if not chosen:
        raise VitplastError(f"{label} needs {_needs(allowed)}")
    for solo in ("full", LN_CONTROL):
        if solo in chosen and len(chosen) > 1:
            what = "already trains everything" if solo == "full" else "is a control group"
            raise VitplastError(f"{label} {solo!r} {what}: do not combine it with other groups")
    order = [*TRAINABLE_CHOICES]
    return {n: (None if b is None else tuple(sorted(b))) for n, b in sorted(chosen.items(), key=lambda kv: order.index(kv[0]))}


def format_blocks(blocks: Sequence[int]) -> str:
    """Ascending blocks as the grammar writes them: ``[0, 2, 3, 4]`` -> ``"0,2-4"``."""
    runs: list[list[int]] = []
    for b in sorted(blocks):
        if runs and b == runs[-1][-1] + 1:
            runs[-1].append(b)
        else:
            runs.append([b])
    return ",".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def format_units(units: Units) -> tuple[str, ...]:
    """The canonical items of ``units``: ``"mha"`` for every block, ``"mha@8-11"`` for some."""
    return tuple(n if b is None else f"{n}@{format_blocks(b)}" for n, b in units.items())


def _needs(allowed: Sequence[str]) -> str:
    if "full" in allowed:
        return f"'full' or a comma list of {' '.join(SELECTABLE)}"
    return f"a comma list of {' '.join(allowed)}"


def parse_train(spec: str | Sequence[str], label: str = "--train",
                allowed: Sequence[str] = TRAINABLE_CHOICES) -> tuple[str, ...]:
    """A choice in canonical form (module docstring): ``"mha@11,8-10, ln2"`` -> ``("mha@8-11", "ln2")``."""
    return format_units(parse_units(spec, label, allowed))


def split_choices(text: str, label: str, allowed: Sequence[str] = TRAINABLE_CHOICES) -> tuple[tuple[str, ...], ...]:
    """Several choices in one option value (``--groups``), each in canonical form (:func:`parse_train`).

    The value is split at commas (and blanks) into parts; ``+`` joins parts into one choice. A part that starts
    a choice after a comma begins a new choice, unless it is a bare block index (``INT``, ``INT-INT``): that
    continues the block list of the unit set before it. So ``ln1@0,2,4,mha`` is the two choices ``ln1@0,2,4``
    and ``mha``, ``mha@8-11+ln2,fc1`` the two choices ``mha@8-11,ln2`` and ``fc1``. An empty value is no
    choice; an empty part is an error naming ``label``.
    """
    chosen: list[list[str]] = []
    for token in split_list(text, label):
        parts = token.split("+")
        if chosen and _is_block(parts[0].strip()):
            chosen[-1].extend(parts)
        else:
            chosen.append(parts)
    return tuple(parse_train(parts, label, allowed) for parts in chosen)


def split_item(item: str) -> tuple[str, tuple[int, ...] | None]:
    """One canonical item -> ``(component or group, blocks or None)``."""
    ((name, blocks),) = parse_units(item).items()
    return name, blocks


def resolve(train: str | Sequence[str], depth: int, model: str = "the model") -> tuple[str, ...]:
    """``train`` checked against a model of ``depth`` blocks: every block index must be below ``depth``; a unit
    set naming every block becomes the whole group. Returns the canonical items."""
    units = parse_units(train)
    for name, blocks in units.items():
        if blocks and blocks[-1] >= depth:
            raise VitplastError(f"{name}@{blocks[-1]}: {model} has {depth} blocks, numbered 0-{depth - 1}")
        if blocks is not None and len(blocks) == depth:
            units[name] = None
    return format_units(units)


def blocks_of(item: str, depth: int) -> list[int]:
    """The blocks a canonical item trains on a model of ``depth`` blocks (every block for a whole group)."""
    blocks = split_item(item)[1]
    return list(range(depth)) if blocks is None else list(blocks)
