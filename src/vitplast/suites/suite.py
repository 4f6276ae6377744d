"""One interface for the built-in sweeps (``vitplast reproduce``): a :class:`Suite` turns the command's options
into a sweep, says what it will cost, and names what follows the sweep.

``vitplast reproduce --suite NAME`` looks the suite up in :data:`SUITES`, builds its spec
(:meth:`Suite.spec`), prints :meth:`Suite.summary` (tasks, device hours from :mod:`vitplast.suites.estimate`,
the suite's own notes), and then either writes the sweep file headed by :meth:`Suite.yaml_header`
(``--dry-run``) or runs the sweep and writes its report (first scoring the rival selectors when
``score_selectors``). A new suite is one :class:`Suite` in :data:`SUITES`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from vitplast.configs import BUNDLED_MODELS, SEED_MAX, option, validate
from vitplast.errors import VitplastError
from vitplast.suites import mini, paper, units
from vitplast.suites.estimate import Estimate, Sizes, estimate
from vitplast.sweep.task import Throughput

if TYPE_CHECKING:
    from vitplast.sweep.plan import Plan
    from vitplast.sweep.spec import SweepSpec


def _csv(xs: Iterable[int]) -> str:
    return ",".join(map(str, xs))


def _names(specs: Iterable[str]) -> str:
    return ",".join(s.removeprefix("mini:") for s in specs)


@dataclass(frozen=True)
class SuiteOptions:
    """The options of ``vitplast reproduce`` that shape a suite (each suite reads its own; ``check`` refuses one
    given to a suite that has no use for it)."""

    quick: bool = option(False, help=f"mini: a tiny grid ({len(mini.QUICK_TARGETS)} data sets, {mini.QUICK_STEPS} "
                         f"steps, seeds {_csv(mini.QUICK_SEEDS)}) to check the chain")
    model: str = option("micro", help="mini, units: the model (default: the bundled micro-ViT)")
    random_weights: bool = option(False, help="mini, units: random weights (no checkpoint needed)")
    data_root: str = option("data", help="paper: folder with CIFAR-10-C/, domainnet/, imagenet/val/")
    steps: int | None = option(None, help=f"mini, units: steps per run (default {mini.STEPS})", ge=1)
    lrs: tuple[float, ...] | None = option(
        None, help="mini: one comma list of AdamW lrs for every group, every seed, no pilot (default: the staged "
        "per-group pilot); units: the pilot's initial grid, on the 1, 3 x 10^k ladder (default "
        f"{','.join(f'{x:g}' for x in units.LRS)})", gt=0)
    seeds: tuple[int, ...] | None = option(
        None, help=f"mini, units: comma list of seeds, the first one the pilot's (default "
        f"{_csv(mini.SEEDS)})", ge=0, le=SEED_MAX)
    budget: float | None = option(None, help=f"units: parameter budget, a fraction of the backbone (default "
                                  f"{units.BUDGET})", gt=0, le=1)
    targets: tuple[str, ...] | None = option(
        None, help="mini, units: comma list of mini targets of docs/mini-targets.md, e.g. latin,count (default: "
        f"mini: its {len(mini.TARGETS)} targets, with --quick {_names(mini.QUICK_TARGETS)}; units: "
        f"{_names(units.TARGETS)})")

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class Suite:
    """A built-in sweep. ``build(options, dry_run, root)``: its spec (refusing bad options; ``dry_run``: nothing
    is run, so files only a run needs are not required). A staged suite plans its next stage from the finished
    runs in the sweep folder ``root`` and, with ``dry_run``, projects the stages still to come (the whole design,
    for the estimate); ``reproduce`` runs stages until the spec adds no task. ``sizes`` and ``throughput`` (with ``overhead`` seconds per
    task): the cost model of its device, named ``device``; ``total_note(estimate)``: appended to the line of the
    total; ``notes(spec, options, estimate, root)``: further lines of
    the summary; ``score_selectors``: score the rival selectors before the report; ``report``: the suite's own
    analysis in place of the paper's report; ``module``: its docstring heads the written sweep file."""

    name: str
    build: Callable[[SuiteOptions, bool, Path | None], SweepSpec]
    sizes: Callable[[str], Sizes]
    throughput: Throughput
    device: str
    module: ModuleType
    overhead: float = 0.0
    score_selectors: bool = False
    total_note: Callable[[Estimate], str] = field(default=lambda est: "")
    #: writes the suite's own analysis of the finished sweep folder instead of the paper's report
    report: Callable[[Path], list[Path]] | None = None
    notes: Callable[[SweepSpec, SuiteOptions, Estimate, Path | None], Iterable[str]] = field(
        default=lambda spec, options, est, root: ())

    def spec(self, options: SuiteOptions, dry_run: bool = False, root: Path | None = None) -> SweepSpec:
        return self.build(options, dry_run, root)

    def default_out(self, options: SuiteOptions) -> Path:
        return Path(f"vitplast-out/reproduce-{self.name}{'-quick' if options.quick else ''}")

    def estimate(self, plan: Plan) -> Estimate:
        return estimate(plan, self.sizes, self.throughput, self.overhead)

    def summary(self, spec: SweepSpec, plan: Plan, est: Estimate, options: SuiteOptions,
                root: Path | None = None) -> Iterator[str]:
        """The lines ``reproduce`` prints before it runs (or instead of running) the suite, one at a time (a note
        that refuses the design, e.g. the power with one seed, comes after the lines before it)."""
        from vitplast.sweep.kinds import ANALYSIS, PROBE, START

        c = plan.counts()
        starts = f", {c[START.name]} LP-FT starts" if c[START.name] else ""
        yield (f"suite {self.name}: {est.runs} finetuning runs ({est.steps:,} steps, {est.images:,} training "
               f"images), {c[PROBE.name]} probes, {c[ANALYSIS.name]} plasticity analyses{starts}")
        for grid, (n, sec) in est.by_grid.items():
            yield f"  grid {grid}: {n} runs, {sec / 3600:,.1f} {self.device} hours"
        yield f"estimated {est.hours:,.1f} {self.device} hours in total{self.total_note(est)}"
        done = [t for t in plan.tasks if t.is_done(root)] if root is not None and root.is_dir() else []
        if done:  # a resumed suite: what is left
            from vitplast.sweep.plan import Plan

            left = self.estimate(Plan(plan.name, [t for t in plan.tasks if t not in done]))
            yield (f"{len(done)} of {len(plan.tasks)} tasks already finished in {root}: {left.hours:,.1f} "
                   f"{self.device} hours left{self.total_note(left)}")
        yield from self.notes(spec, options, est, root)

    def dry_run_line(self, est: Estimate, path: Path) -> str:
        return f"{est.runs} runs, {est.steps} steps, {est.hours:.1f} {self.device} hours -> {path}"

    def yaml_header(self) -> str:
        """The suite module's docstring as YAML comments."""
        doc = self.module.__doc__ or ""
        return "".join(f"# {line}".rstrip() + "\n" for line in doc.strip().splitlines()) + "\n"


def _refuse(given: dict[str, object], owner: str) -> None:
    """One ``error:`` line when an option of other suites (``owner``, e.g. ``"units suite"``) is given."""
    named = [k for k, v in given.items() if v not in (None, False)]
    if named:
        raise VitplastError(f"{', '.join(named)} apply to the {owner}")


def _mini_spec(o: SuiteOptions, dry_run: bool, root: Path | None) -> SweepSpec:
    _refuse({"--budget": o.budget}, "units suite")
    bundled = o.model in BUNDLED_MODELS
    # a bundled model with --random-weights: the micro-ViT architecture without its checkpoint
    spec = mini.mini_suite("timm:vit_micro_patch4_32" if bundled and o.random_weights else o.model, o.random_weights,
                           o.quick, o.steps, o.lrs or None, o.seeds or None, root=root, project=dry_run,
                           targets=o.targets)
    if bundled and not o.random_weights and not dry_run:
        from vitplast.models.micro import checkpoint_path

        try:
            checkpoint_path(o.model)
        except VitplastError as exc:
            raise VitplastError(f"{exc}, or pass --random-weights to check the chain") from None
    return spec


def _mini_notes(spec: SweepSpec, o: SuiteOptions, est: Estimate, root: Path | None) -> Iterator[str]:
    """The grid, and (not for ``--quick``, whose numbers mean nothing) the power."""
    base = spec.grids[0]
    seeds = sorted({s for grid in spec.grids for s in grid.seeds})
    staged = any(grid.name.startswith("pilot-") for grid in spec.grids)
    lrs = ("; ".join(f"{'+'.join(gs)} pilot lrs {list(grid)}" for gs, grid in mini.GROUP_LRS.items())
           + f" on seed {seeds[0]}, widened up to {mini.MAX_LRS} lrs while the best is on an edge, then seeds "
           f"{_csv(seeds[1:])} at the chosen lr" if staged else
           "; ".join(f"{'+'.join('+'.join(g) for g in grid.groups)} lrs {list(grid.lrs)}" for grid in spec.grids))
    yield (f"grid: {', '.join(d.label for d in base.datasets)}; seeds {seeds}; {lrs}"
           + f"; {base.train.get('steps')} steps, validation every {base.train.get('eval_every')}, head "
           + f"{base.train.get('head_init', 'random')}")
    if not o.quick:
        sizes_text = "/".join(str(mini.mini_sizes(d.spec).test) for d in base.datasets)
        observed = mini.observed_noise(spec, root) if root is not None and root.is_dir() else None
        accuracy, seed_sd = observed[:2] if observed else (mini.DESIGN_ACCURACY, mini.DESIGN_SEED_SD)
        source = (f"observed over the {observed[2]} target x group cells of this sweep with >= 2 seeds" if observed
                  else "as micro-long's graded target under the previous protocol")
        yield (
            f"power, from simulation of this design ({len(base.datasets)} targets of {sizes_text} test "
            f"images, {len(seeds)} seeds, seed SD {100 * seed_sd:.1f} pp at accuracy {100 * accuracy:.0f} % "
            f"{source}, per-image difficulty shared by the groups): smallest effect detected with 80 % power at the "
            "primary family's level 0.05/3: "
            + "; ".join(f"{d.test} {_fmt_detectable(d.effect, d.unit)}"
                        for d in mini.design_power(spec, noise=(accuracy, seed_sd))))


def _fmt_detectable(x: float, unit: str) -> str:
    if math.isnan(x):
        return "not reachable"
    return f"{100 * x:.1f} pp" if unit == "pp" else f"{x:.2f}"


def _paper_spec(o: SuiteOptions, dry_run: bool, root: Path | None) -> SweepSpec:
    _refuse({"--quick": o.quick, "--steps": o.steps, "--lrs": o.lrs, "--seeds": o.seeds}, "mini suite")
    _refuse({"--budget": o.budget}, "units suite")
    _refuse({"--targets": o.targets}, "mini and units suites")
    return paper.paper_suite(o.data_root)


def units_design(o: SuiteOptions) -> units.Design:
    """The units suite's design from the options (a bundled model with ``--random-weights``: its architecture)."""
    _refuse({"--quick": o.quick}, "mini suite")
    model = "timm:vit_micro_patch4_32" if o.model in BUNDLED_MODELS and o.random_weights else o.model
    targets = mini.target_specs(o.targets, mini.GRADED_TARGETS) if o.targets is not None else None
    given: dict[str, Any] = {"targets": targets, "budget": o.budget, "steps": o.steps, "seeds": o.seeds,
                             "lrs": o.lrs}
    return units.Design(model, random_weights=o.random_weights, **{k: v for k, v in given.items() if v})


def _units_spec(o: SuiteOptions, dry_run: bool, root: Path | None) -> SweepSpec:
    design = units_design(o)
    if not dry_run and root is not None:
        units.prepare(design, root)  # the selection stage, cached in the sweep folder
    return units.units_suite(design, root, project=dry_run)


def _units_notes(spec: SweepSpec, o: SuiteOptions, est: Estimate, root: Path | None) -> Iterator[str]:
    d = units_design(o)
    yield (f"design: budget {100 * d.budget:g} % of the backbone; targets {', '.join(d.targets)}; contenders: each "
           f"selector's group-level and block-level set (deduplicated), last-k, first-k, {units.RANDOM_DRAWS} random "
           f"unit sets; lrs {list(d.lrs)} on seed {d.seeds[0]} (widened up to {mini.MAX_LRS} on an edge), seeds "
           f"{_csv(d.seeds[1:])} at the chosen lr for the block-level sets and the group-level set best on validation")
    if root is None or not all(units.selection_path(root, t).is_file() for t in d.targets):
        yield ("contenders not chosen yet (the selection stage runs first, about a minute per target): projected "
               "with every selector's set distinct, an upper bound")
    yield f"analysis: {units.TABLE}.csv and .md in the sweep folder; {units.units_rule()}"


#: The built-in suites by name; the first is ``reproduce``'s default.
SUITES: dict[str, Suite] = {
    "mini": Suite("mini", _mini_spec, mini.mini_sizes, mini.mini_throughput, "CPU (1 thread per trial)", mini,
                  overhead=mini.CPU_TASK_OVERHEAD, score_selectors=True, notes=_mini_notes,
                  total_note=lambda est: f", about {est.hours * 60 / 2:,.0f} minutes on 2 cores if two concurrent "
                  "1-thread trials keep that rate"),
    "paper": Suite("paper", _paper_spec, paper.paper_sizes, paper.paper_throughput, f"GPU ({paper.GPU_NAME})", paper),
    "units": Suite("units", _units_spec, mini.mini_sizes, mini.mini_throughput, "CPU (1 thread per trial)", units,
                   overhead=mini.CPU_TASK_OVERHEAD, notes=_units_notes, report=units.write_units_report),
}


def suite_of(name: str) -> Suite:
    """The suite called ``name`` (one ``error:`` line for another name)."""
    if name not in SUITES:
        raise VitplastError(f"--suite must be one of {', '.join(SUITES)}, got {name!r}")
    return SUITES[name]
