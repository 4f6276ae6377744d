"""The sweep file (YAML) and its validation.

A sweep is a base grid plus optional ablation grids; each grid is the Cartesian product
``models x datasets x groups x optimizers x lrs x seeds`` of finetuning runs with shared training
settings. Example (every key but ``models`` and ``datasets`` is optional)::

    name: my-sweep
    models: [micro]                       # model specs (or {spec: ..., label: ...})
    datasets:                             # data specs, or mappings with per-dataset settings
      - mini:digits
      - {spec: mini:textures, label: textures, steps: 300, lrs: [0.01, 0.03]}
    groups: [full, embed, ln1, mha, ln2, fc1, fc2]   # 'ln1+ln2' trains both groups in one run;
                                          # 'mha@8-11+ln2' MHA of blocks 8-11 and LN2 (vitplast.units)
    optimizers: [sgd, {name: adamw, lr_scale: 0.01}] # lr_scale multiplies every lr of the grid
    lrs: [0.001, 0.003, 0.01, 0.03]
    seeds: [0, 42, 3407]
    train: {steps: 200, batch_size: 64, eval_every: 50}   # any TrainConfig field
    probe: true                           # linear probe once per (model, dataset); or {C: ..., batch_size: ...}
    plasticity: {source: mini:source, pairs: 256}          # analysis once per (model, dataset); false: none
    run: {device: auto, workers: null}    # execution only, never part of a run's identity
    ablations:
      - {name: adamw, optimizers: [{name: adamw, lr_scale: 0.01}]}   # any grid key overrides the base

A dataset mapping may set ``lrs`` (replacing the grid's) and any :class:`~vitplast.train.TrainConfig`
field (``steps``, ``batch_size``, ...; these override ``train``). The lr of a run is
``round(lr * lr_scale, 12 significant digits)``. Unknown keys are errors, so a typo never silently
falls back to a default.

Parsing is typed and generic: ``probe``, ``plasticity``, ``run``, model and optimizer entries are config
dataclasses built with :func:`vitplast.configs.from_mapping`, and training settings are checked against
the type of the :class:`~vitplast.train.TrainConfig` field of the same name (a field added there is
accepted here without change). Errors name the YAML key and the expected type (``probe.batch_size must
be int, got 'x'``). Only the grid's own rules (lists, uniqueness, inheritance by ablations) are written
by hand. YAML numbers such as ``1e-3`` (a string for PyYAML) are read as floats. The file is read by
:func:`vitplast.reading.read_yaml`: anchors, aliases, duplicate keys and object tags are refused.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitplast.analysis_config import AnalyzeConfig
from vitplast.configs import (
    _check_field,
    _split_optional,
    default_of,
    device_option,
    from_mapping,
    option,
    seed_option,
    validate,
)
from vitplast.data.specs import check_prefix
from vitplast.errors import VitplastError
from vitplast.reading import read_yaml
from vitplast.train.config import ProbeConfig, TrainConfig, parse_groups, recipe_for

TRAIN_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("model", "data"))
#: Fields a grid or a dataset entry may not set through ``train`` (they have their own keys).
GRID_OWNED = ("train", "optimizer", "lr", "seed")
GRID_KEYS = ("name", "models", "datasets", "groups", "optimizers", "lrs", "seeds", "train")
TOP_KEYS = (*GRID_KEYS, "probe", "plasticity", "run", "ablations")


def round_lr(lr: float) -> float:
    """Learning rates are compared and hashed after rounding to 12 significant digits (3e-3 * 0.01 == 3e-5)."""
    return float(f"{lr:.12g}")


@dataclass(frozen=True)
class ModelEntry:
    spec: str
    label: str


@dataclass(frozen=True)
class DatasetEntry:
    """One target data set; ``lrs`` replaces the grid's lr list, ``overrides`` sets TrainConfig fields."""

    spec: str
    label: str
    lrs: tuple[float, ...] | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)

    def recipe(self) -> dict[str, Any]:
        """The data set's training recipe (what ``finetune`` uses on it) without the optimizer and lr, which the
        grid sets: the base that ``train`` and the entry's overrides replace."""
        return {k: v for k, v in recipe_for(self.spec).items() if k not in GRID_OWNED}


@dataclass(frozen=True)
class OptimizerEntry:
    name: str
    lr_scale: float = 1.0
    overrides: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Grid:
    """One Cartesian grid of finetuning runs."""

    name: str
    models: tuple[ModelEntry, ...]
    datasets: tuple[DatasetEntry, ...]
    groups: tuple[tuple[str, ...], ...]
    optimizers: tuple[OptimizerEntry, ...]
    lrs: tuple[float, ...]
    seeds: tuple[int, ...]
    train: Mapping[str, Any]

    def runs(self) -> list[tuple[ModelEntry, DatasetEntry, TrainConfig]]:
        """Every run of the grid, validated, in a fixed order: seed outermost (an interrupted sweep then
        holds complete lr x group grids for its first seeds), then model, dataset, optimizer, group, lr."""
        out = []
        for seed in self.seeds:
            for model in self.models:
                for ds in self.datasets:
                    for opt in self.optimizers:
                        for group in self.groups:
                            for lr in ds.lrs if ds.lrs is not None else self.lrs:
                                kw = {**ds.recipe(), **self.train, **ds.overrides, **opt.overrides}
                                cfg = TrainConfig(
                                    model=model.spec,
                                    data=ds.spec,
                                    train=group,
                                    optimizer=opt.name,
                                    lr=round_lr(lr * opt.lr_scale),
                                    seed=seed,
                                    **kw,
                                )
                                out.append((model, ds, cfg))
        return out

    def settings(self, ds: DatasetEntry) -> dict[str, Any]:
        """The data recipe, then the shared training settings of the grid, then ``ds``'s overrides."""
        return {**ds.recipe(), **self.train, **ds.overrides}


@dataclass(frozen=True)
class ProbeSettings:
    """The linear probe run once per (model, dataset)."""

    C: float | None = option(None, help="inverse regularisation (null: chosen on the validation split)", gt=0)
    batch_size: int = option(default_of(ProbeConfig, "batch_size"), help="batch of the feature extraction", ge=1)

    def __post_init__(self) -> None:
        validate(self, prefix="probe")


@dataclass(frozen=True)
class PlasticitySettings:
    """The plasticity analysis run once per (model, dataset) against ``source``."""

    source: str = option("mini:source", help="source data of the plasticity analysis")
    pairs: int = option(256, help="source/target pairs")
    mode: str = option("embedding", help="estimator mode (embedding or insitu)")
    seed: int = seed_option(help="seed of the pair sampling")
    batch_size: int = option(32, help="batch of the analysis", ge=1)
    bounds: bool = option(True, help="also compute the upper bounds")

    def __post_init__(self) -> None:
        validate(self, prefix="plasticity")


@dataclass(frozen=True)
class RunSettings:
    """How tasks execute (device, loader workers); not part of any run's identity."""

    device: str = device_option()
    workers: int | None = option(None, help="data-loader processes per trial (null: automatic)", ge=0)
    eval_batch_size: int | None = option(None, help="batch of the evaluation passes (null: the run's)", ge=1)

    def __post_init__(self) -> None:
        validate(self, prefix="run")  # the device's name here; whether it exists is checked per task


@dataclass(frozen=True)
class _ModelItem:
    spec: str = option(help="model spec")
    label: str | None = option(None, help="name in tables and figures (default: the spec)")


@dataclass(frozen=True)
class _OptimizerItem:
    name: str = option(help="sgd or adamw")
    lr_scale: float = option(1.0, help="multiplies every lr of the grid", gt=0)
    momentum: float | None = option(None, help="overrides train.momentum")
    weight_decay: float | None = option(None, help="overrides train.weight_decay")


@dataclass(frozen=True)
class SweepSpec:
    name: str
    grids: tuple[Grid, ...]
    probe: ProbeSettings | None = ProbeSettings()
    plasticity: PlasticitySettings | None = PlasticitySettings()
    run: RunSettings = RunSettings()

    def to_dict(self) -> dict[str, Any]:
        """A plain mapping that :func:`parse_sweep` reads back into an equal spec (written as ``sweep.yaml``)."""
        base, *ablations = self.grids
        out: dict[str, Any] = {"name": self.name, **_grid_dict(base)}
        out["probe"] = dataclasses.asdict(self.probe) if self.probe is not None else False
        out["plasticity"] = dataclasses.asdict(self.plasticity) if self.plasticity is not None else False
        out["run"] = dataclasses.asdict(self.run)
        if ablations:
            out["ablations"] = [{"name": g.name, **_grid_dict(g)} for g in ablations]
        return out

    def to_yaml(self) -> str:
        """:meth:`to_dict` as YAML without anchors or aliases (a value used twice is written twice), so that
        :func:`load_sweep` reads it back."""
        import yaml

        class Dumper(yaml.SafeDumper):
            def ignore_aliases(self, data: Any) -> bool:
                return True

        return yaml.dump(self.to_dict(), Dumper=Dumper, sort_keys=False, default_flow_style=None, width=110)


def _grid_dict(g: Grid) -> dict[str, Any]:
    def model(m: ModelEntry) -> Any:
        return m.spec if m.label == m.spec else {"spec": m.spec, "label": m.label}

    def dataset(d: DatasetEntry) -> Any:
        if d.label == d.spec and d.lrs is None and not d.overrides:
            return d.spec
        out: dict[str, Any] = {"spec": d.spec}
        if d.label != d.spec:
            out["label"] = d.label
        if d.lrs is not None:
            out["lrs"] = list(d.lrs)
        return out | dict(d.overrides)

    def optimizer(o: OptimizerEntry) -> Any:
        if o.lr_scale == 1.0 and not o.overrides:
            return o.name
        return {"name": o.name, "lr_scale": o.lr_scale, **o.overrides}

    return {
        "models": [model(m) for m in g.models],
        "datasets": [dataset(d) for d in g.datasets],
        "groups": ["+".join(t) for t in g.groups],
        "optimizers": [optimizer(o) for o in g.optimizers],
        "lrs": list(g.lrs),
        "seeds": list(g.seeds),
        "train": dict(g.train),
    }


# --- parsing -------------------------------------------------------------------------------------------
def load_sweep(path: str | Path) -> SweepSpec:
    """Read (:func:`vitplast.reading.read_yaml`: safe YAML, no aliases, no duplicate keys) and validate a sweep
    YAML file."""
    p = Path(path)
    if not p.is_file():
        raise VitplastError(f"sweep file {p} does not exist")
    data = read_yaml(p)
    if not isinstance(data, dict):
        raise VitplastError(f"{p} must hold a mapping with at least 'models' and 'datasets'")
    try:
        return parse_sweep(data, default_name=p.stem)
    except VitplastError as exc:
        raise VitplastError(f"{p}: {exc}") from None


_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)(?:[eE][-+]?[0-9]+)?$")


def parse_sweep(data: Mapping[str, Any], default_name: str = "sweep") -> SweepSpec:
    """Validate a sweep mapping (module docstring); raises :class:`VitplastError` naming the first problem."""
    _check_keys(data, TOP_KEYS, "sweep")
    name = str(data.get("name") or default_name)
    base = _parse_grid(data, name, None)
    grids = [base]
    ablations = data.get("ablations") or []
    if not isinstance(ablations, list):
        raise VitplastError("'ablations' must be a list of grids")
    for i, ab in enumerate(ablations):
        if not isinstance(ab, dict):
            raise VitplastError(f"ablation {i + 1} must be a mapping of grid keys")
        _check_keys(ab, GRID_KEYS, f"ablation {i + 1}")
        grids.append(_parse_grid(ab, str(ab.get("name") or f"ablation{i + 1}"), base))
    return SweepSpec(
        name=name,
        grids=tuple(grids),
        probe=_parse_probe(data.get("probe", True)),
        plasticity=_parse_plasticity(data.get("plasticity", True)),
        run=_parse_run(data.get("run") or {}),
    )


def _check_keys(d: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    unknown = [k for k in d if k not in allowed]
    if unknown:
        raise VitplastError(f"unknown key {unknown[0]!r} in {where}: allowed keys are {', '.join(allowed)}")


def _as_list(value: Any, key: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, int, float, dict)):
        return [value]
    if isinstance(value, list):
        return value
    raise VitplastError(f"{key!r} must be a list")


def _number(v: Any, key: str, kind: type = float) -> Any:
    """A list element of ``lrs`` / ``seeds`` as ``kind`` (strings such as ``1e-3`` included)."""
    if isinstance(v, str) and kind is float and _FLOAT.match(v.strip()):
        v = float(v)
    return _coerce_to(v, kind, key)


def _coerce_to(value: Any, hint: Any, label: str, meta: Mapping[str, Any] | None = None) -> Any:
    """``value`` checked against type ``hint`` (ints accepted for floats, lists for tuples); the error
    names ``label`` and the expected type."""
    base, _ = _split_optional(hint)
    if typing.get_origin(base) is tuple and isinstance(value, list):
        value = tuple(value)
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    _check_field(label, value, hint, meta or {})
    return value


_TRAIN_HINTS = typing.get_type_hints(TrainConfig)
_TRAIN_META = {f.name: f.metadata for f in dataclasses.fields(TrainConfig)}


def _train_overrides(d: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Training settings, each checked against the TrainConfig field of the same name (generic)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if k in GRID_OWNED:
            raise VitplastError(f"{where}: {k!r} is set by the grid keys (groups, optimizers, lrs, seeds), not here")
        if k not in TRAIN_FIELDS:
            raise VitplastError(f"{where}: unknown training setting {k!r}; known: {', '.join(TRAIN_FIELDS)}")
        out[k] = _coerce_to(v, _TRAIN_HINTS[k], f"{where}.{k}", _TRAIN_META[k])
    return out


def _recipe_default(datasets: Sequence[DatasetEntry], name: str) -> tuple[str, float]:
    """The optimizer and lr of the data sets' training recipe (the same ``finetune`` uses), for a grid that
    gives no ``optimizers`` or ``lrs``; data sets with different recipes must list them."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    chosen = {(r.get("optimizer", defaults["optimizer"]), r.get("lr", defaults["lr"]))
              for r in (recipe_for(ds.spec) for ds in datasets)}
    if len(chosen) > 1:
        raise VitplastError(f"grid {name!r}: its data sets have different training recipes "
                            f"({', '.join(f'{o} lr {lr:g}' for o, lr in sorted(chosen))}): list 'optimizers' and 'lrs'")
    return chosen.pop()


def _unique(items: Sequence[Any], key: str) -> None:
    if len(set(items)) != len(items):
        raise VitplastError(f"{key!r} lists the same value twice")


def _parse_grid(d: Mapping[str, Any], name: str, base: Grid | None) -> Grid:
    def inherit(key: str, default: Any) -> Any:
        return getattr(base, key) if base is not None else default

    models = _parse_models(d["models"]) if "models" in d else inherit("models", ())
    datasets = _parse_datasets(d["datasets"]) if "datasets" in d else inherit("datasets", ())
    if not models:
        raise VitplastError(f"grid {name!r} lists no models")
    if not datasets:
        raise VitplastError(f"grid {name!r} lists no datasets")
    all_groups = tuple((g,) for g in ("full", "embed", "ln1", "mha", "ln2", "fc1", "fc2"))
    groups = (
        tuple(parse_groups(str(g).replace("+", ","), "'groups'") for g in _as_list(d["groups"], "groups"))
        if "groups" in d
        else inherit("groups", all_groups)
    )
    if not groups:
        raise VitplastError(f"grid {name!r}: 'groups' must list at least one group")
    _unique(groups, "groups")
    optimizers = _parse_optimizers(d["optimizers"]) if "optimizers" in d else inherit("optimizers", None)
    lrs = tuple(_number(x, "lrs") for x in _as_list(d["lrs"], "lrs")) if "lrs" in d else inherit("lrs", None)
    if optimizers is None or lrs is None:
        opt, lr = _recipe_default(datasets, name)
        optimizers = optimizers if optimizers is not None else (OptimizerEntry(opt),)
        lrs = lrs if lrs is not None else (lr,)
    seeds = tuple(_number(x, "seeds", int) for x in _as_list(d["seeds"], "seeds")) if "seeds" in d else inherit("seeds", (0,))
    train = dict(base.train) if base else {}
    if "train" in d:
        if not isinstance(d["train"], dict):
            raise VitplastError(f"grid {name!r}: 'train' must be a mapping of training settings")
        train.update(_train_overrides(d["train"], "train" if base is None else f"ablation {name!r} train"))
    for key, values in (("lrs", lrs), ("seeds", seeds)):
        if not values and not (key == "lrs" and all(ds.lrs for ds in datasets)):
            raise VitplastError(f"grid {name!r} has an empty {key!r} list")
        _unique(values, key)
    if any(lr <= 0 for lr in lrs):
        raise VitplastError(f"grid {name!r}: every lr must be > 0")
    for key, entries in (("models", [m.spec for m in models]), ("datasets", [x.spec for x in datasets])):
        _unique(entries, key)
    grid = Grid(name, models, datasets, groups, optimizers, lrs, seeds, train)
    grid.runs()  # validates every run before anything is written
    return grid


def _parse_models(value: Any) -> tuple[ModelEntry, ...]:
    out = []
    for i, m in enumerate(_as_list(value, "models")):
        item = from_mapping(_ModelItem, m if isinstance(m, Mapping) else {"spec": m}, where=f"models[{i}]")
        out.append(ModelEntry(item.spec, item.label or item.spec))
    return tuple(out)


def _parse_datasets(value: Any) -> tuple[DatasetEntry, ...]:
    out = []
    for d in _as_list(value, "datasets"):
        if not isinstance(d, dict):
            out.append(DatasetEntry(str(d), str(d)))
            continue
        if "spec" not in d:
            raise VitplastError(f"a dataset entry needs 'spec' (got keys {', '.join(d)})")
        rest = {k: v for k, v in d.items() if k not in ("spec", "label", "lrs")}
        lrs = None
        if "lrs" in d:
            lrs = tuple(_number(x, "lrs") for x in _as_list(d["lrs"], "lrs"))
            if not lrs or any(x <= 0 for x in lrs):
                raise VitplastError(f"dataset {d['spec']}: 'lrs' must be a non-empty list of values > 0")
            _unique(lrs, "lrs")
        spec = str(d["spec"])
        out.append(DatasetEntry(spec, str(d.get("label") or spec), lrs, _train_overrides(rest, f"datasets[{spec}]")))
    labels = [d.label for d in out]
    _unique(labels, "dataset labels")
    for d in out:
        check_prefix(d.spec)
    return tuple(out)


def _parse_optimizers(value: Any) -> tuple[OptimizerEntry, ...]:
    out = []
    for i, o in enumerate(_as_list(value, "optimizers")):
        item = from_mapping(_OptimizerItem, o if isinstance(o, Mapping) else {"name": o}, where=f"optimizers[{i}]")
        rest = {k: getattr(item, k) for k in ("momentum", "weight_decay") if getattr(item, k) is not None}
        out.append(OptimizerEntry(item.name, item.lr_scale, rest))
    if not out:
        raise VitplastError("'optimizers' is empty")
    _unique([(o.name, o.lr_scale, tuple(sorted(o.overrides.items()))) for o in out], "optimizers")
    return tuple(out)


def _settings(cls: type[Any], value: Any, key: str) -> Any:
    """``true`` -> defaults, ``false``/null -> None, a mapping -> typed settings (errors name ``key.field``)."""
    if value is False or value is None:
        return None
    if value is True:
        return cls()
    if not isinstance(value, Mapping):
        fields = ", ".join(f.name for f in dataclasses.fields(cls))
        raise VitplastError(f"{key!r} must be true, false or a mapping ({fields}), got {value!r}")
    return from_mapping(cls, value, where=key)


def _parse_probe(value: Any) -> ProbeSettings | None:
    return typing.cast(ProbeSettings | None, _settings(ProbeSettings, value, "probe"))


def _parse_plasticity(value: Any) -> PlasticitySettings | None:
    s = typing.cast(PlasticitySettings | None, _settings(PlasticitySettings, value, "plasticity"))
    if s is None:
        return None
    check_prefix(s.source)
    AnalyzeConfig(source=s.source, pairs=s.pairs, mode=s.mode, seed=s.seed, batch_size=s.batch_size).validate()
    return s


def _parse_run(value: Any) -> RunSettings:
    return typing.cast(RunSettings, _settings(RunSettings, value, "run") or RunSettings())

