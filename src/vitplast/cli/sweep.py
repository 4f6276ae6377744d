"""``vitplast sweep``, ``vitplast report`` and ``vitplast reproduce``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from vitplast.cli import app
from vitplast.cli.options import Fields, options_from
from vitplast.cli.progress import Heartbeat
from vitplast.configs import check_model_spec, default_of, parse_numbers, split_list
from vitplast.errors import VitplastError
from vitplast.suites import SUITES, SuiteOptions
from vitplast.sweep.resources import Resources
from vitplast.sweep.spec import RunSettings
from vitplast.units import split_choices

console = Console(stderr=True)

ExecOpt = Annotated[str, typer.Option(
    "--executor", help="ray (Ray Tune, the default when installed) or local (one task at a time, in process; "
    "the fallback, with a notice, when Ray is not installed)")]


N = TypeVar("N", int, float)


def _numbers(text: str | None, name: str, cast: type[N]) -> list[N] | None:
    """``"0.01,0.03"`` (commas or spaces) -> numbers of type ``cast`` (:func:`parse_numbers`); ``None`` stays."""
    return None if text is None else list(parse_numbers(text, name, cast))


def _strs(text: str | None, name: str) -> list[str] | None:
    return None if text is None else list(split_list(text, name))


def grid_from_flags(
    models: str | None, datasets: str | None, groups: str | None, optimizers: str | None, lrs: str | None,
    seeds: str | None, train: dict[str, Any], probe: bool, plasticity: dict[str, Any] | None, run: dict[str, Any],
) -> dict[str, Any]:
    """The sweep mapping of the ``--models --datasets ...`` flags (groups: ``mha,ln1`` = two runs; ``ln1+ln2`` = one;
    ``ln1@0,2,4,mha`` = two, :func:`vitplast.units.split_choices`)."""
    if not datasets:
        raise VitplastError("give a sweep file, or at least --datasets (and --models, default micro)")
    data: dict[str, Any] = {"name": "sweep", "models": _strs(models, "--models") or ["micro"],
                            "datasets": _strs(datasets, "--datasets")}
    choices = None if groups is None else ["+".join(items) for items in split_choices(groups, "--groups")]
    for key, value in (("groups", choices), ("optimizers", _strs(optimizers, "--optimizers")), ("lrs", _numbers(lrs, "--lrs", float)),
                       ("seeds", _numbers(seeds, "--seeds", int))):
        if value is not None:
            data[key] = value
    data |= {"train": train, "probe": probe, "plasticity": plasticity if plasticity is not None else False, "run": run}
    return data


class _Bar:
    """A progress bar over the sweep's tasks on stderr (drawn on a terminal only, from the first task on: an error
    before it prints nothing but the error line)."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[last]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=console, disable=not console.is_terminal,
        )
        self.task: Any = None
        self.failed = 0
        # Off a terminal (logs, CI) a plain line every 30 s instead of the bar.
        self.beat = None if console.is_terminal else Heartbeat(console.file)
        self.advance: Any = None

    def start(self, plan: Any, todo: list[Any], skipped: int) -> None:
        from vitplast.sweep.kinds import ANALYSIS, FINETUNE, PROBE, START

        c = plan.counts()
        starts = f", {c[START.name]} LP-FT starts" if c[START.name] else ""
        console.print(
            f"sweep '{plan.name}': {c[FINETUNE.name]} runs, {c[PROBE.name]} probes, {c[ANALYSIS.name]} analyses{starts}; "
            f"{skipped} finished (skipped), {len(todo)} to run"
        )
        self.progress.start()
        self.task = self.progress.add_task("tasks", total=len(todo), last="")
        if self.beat is not None:
            self.advance = self.beat.phase("tasks done", len(todo))

    def done(self, task: Any, outcome: dict[str, Any]) -> None:
        if outcome.get("status") == "failed":
            self.failed += 1
            self.progress.console.print(f"[red]failed[/red] {task.id} {task.describe()}: {outcome.get('error', '')}")
        self.progress.update(self.task, advance=1, last=f"{task.describe()} ({self.failed} failed)")
        if self.advance is not None:
            self.advance(1)

    def stop(self) -> None:
        if self.beat is not None:
            self.beat.stop()
        if self.task is not None:  # rich prints an empty line when a bar that never started stops
            self.progress.stop()


def _executor(executor: str, resources: Any) -> str:
    """``auto``: Ray when installed, else the local executor with a one-line notice (an explicit ``ray``
    or a cluster ``--address`` without Ray stays an error)."""
    import importlib.util

    has_ray = importlib.util.find_spec("ray") is not None
    if executor != "auto":
        return executor
    if has_ray or resources.address:
        return "ray"
    console.print("note: Ray Tune is not installed, running the tasks one at a time in this process "
                  "(pip install 'vitplast[sweep]' for parallel trials)")
    return "local"


def _resources(executor: str, options: dict[str, Any]) -> Any:
    """The executor and resource options, checked (also against this machine and the cluster address; a
    ``ray://`` address needs the Ray client) before a plan is printed or a sweep folder written."""
    import importlib.util

    from vitplast.sweep.resources import Resources, check_executor

    check_executor(executor)
    resources = Resources(**options)
    address = resources.address
    if address and address.startswith("ray://") and importlib.util.find_spec("ray") is not None \
            and importlib.util.find_spec("grpc") is None:
        raise VitplastError("a ray:// address needs the Ray client: pip install 'ray[client]' "
                            "(included in 'vitplast[sweep]')")
    resources.validate()
    return resources


def _execute(spec: Any, out: Path, executor: str, resources: Any, retry_failed: bool = True) -> Any:
    from vitplast.sweep import run_sweep

    executor = _executor(executor, resources)
    bar = _Bar()
    try:
        outcome = run_sweep(spec, out, executor=executor, resources=resources, retry_failed=retry_failed,
                            on_start=bar.start, on_done=bar.done)
    finally:
        bar.stop()
    n_fail = len(outcome.failed)
    console.print(
        f"{outcome.ran} tasks ran, {outcome.skipped} were already finished, {n_fail} failed, "
        f"{outcome.pending} not finished -> {out}/results.csv"
    )
    for t in outcome.failed[:10]:
        console.print(f"  failed: {t.id} {t.describe()} (see {t.error_path(out)})")
    if outcome.pending:
        console.print("interrupted: re-run the same command to resume the unfinished tasks")
        sys.exit(130)
    return outcome


@app.command()
@options_from(Fields(Resources, "resources", build=False),
              Fields(RunSettings, "run", only=("device", "workers"), build=False))
def sweep(
    sweep_file: Annotated[Path | None, typer.Argument(help="sweep YAML (or give the grid as flags)")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="sweep directory (runs/, results.csv, ...)")] = None,
    status: Annotated[Path | None, typer.Option("--status", help="show the progress of the sweep in DIR and exit")] = None,
    resources: dict[str, Any] | None = None,
    executor: ExecOpt = "auto",
    models: Annotated[str | None, typer.Option("--models", help="comma list of model specs")] = None,
    datasets: Annotated[str | None, typer.Option("--datasets", help="comma list of data specs")] = None,
    groups: Annotated[str | None, typer.Option("--groups", help="comma list, one run each: full,mha,ln1; ln1+ln2 trains both in one run; unit sets: "
        "ln1@0,2,4,mha@8-11 is two runs (a comma before a block index continues the unit set)")] = None,
    optimizers: Annotated[str | None, typer.Option("--optimizers", help="comma list: sgd,adamw")] = None,
    lrs: Annotated[str | None, typer.Option("--lrs", help="comma list of learning rates")] = None,
    seeds: Annotated[str | None, typer.Option("--seeds", help="comma list of seeds")] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="steps of every run")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="effective batch of every run")] = None,
    eval_every: Annotated[int | None, typer.Option("--eval-every", help="validate every N steps")] = None,
    augment: Annotated[str | None, typer.Option(
        "--augment", help="training augmentation of every run: rrc, crop or none (default: the engine's)")] = None,
    random_weights: Annotated[bool, typer.Option("--random-weights", help="random initialisation (tests)")] = False,
    no_probe: Annotated[bool, typer.Option("--no-probe", help="skip the linear probes")] = False,
    plasticity_source: Annotated[
        str | None, typer.Option("--plasticity-source", help="source data of the plasticity analysis (default: none)")
    ] = None,
    pairs: Annotated[int, typer.Option("--pairs", help="pairs of the plasticity analysis")] = 256,
    run: dict[str, Any] | None = None,
    no_retry_failed: Annotated[bool, typer.Option("--no-retry-failed", help="leave failed runs failed")] = False,
) -> None:
    """Run a grid of finetuning runs (plus probes and plasticity analyses) on Ray Tune; re-run to resume.

    Outputs in --out: runs/<id>/ (one finetune run each, id = hash of its config), probes/, plasticity/,
    results.csv (one row per run), probes.csv, plasticity.csv, bounds.csv, analyses.csv, plan.json,
    sweep.yaml, events.jsonl. `vitplast sweep --status DIR` shows what is done, failed or pending.
    """
    if status is not None:
        _print_status(status)
        return
    flags = {"--models": models, "--datasets": datasets, "--groups": groups, "--optimizers": optimizers,
             "--lrs": lrs, "--seeds": seeds, "--steps": steps, "--batch-size": batch_size,
             "--eval-every": eval_every, "--augment": augment, "--plasticity-source": plasticity_source}
    if out is None:
        raise VitplastError("--out DIR is required (or use --status DIR)")
    assert resources is not None and run is not None  # filled by options_from
    device, workers = run["device"], run["workers"]
    checked = _resources(executor, resources)
    if sweep_file is not None:
        given = [k for k, v in flags.items() if v is not None] + (["--random-weights"] if random_weights else [])
        if given:
            raise VitplastError(f"give the grid either as a sweep file or as flags, not both ({given[0]})")
        from vitplast.sweep.spec import load_sweep

        spec = load_sweep(sweep_file)
    else:
        train: dict[str, Any] = {k: v for k, v in (("steps", steps), ("batch_size", batch_size),
                                                    ("eval_every", eval_every), ("augment", augment)) if v is not None}
        if random_weights:
            train["random_weights"] = True
        plast = None if plasticity_source is None else {"source": plasticity_source, "pairs": pairs}
        grid = grid_from_flags(models, datasets, groups, optimizers, lrs, seeds, train, not no_probe, plast, run)
        from vitplast.sweep.spec import parse_sweep

        spec = parse_sweep(grid)
    if sweep_file is not None and (device != default_of(RunSettings, "device") or workers is not None):
        from dataclasses import replace

        spec = replace(spec, run=RunSettings(device, workers, spec.run.eval_batch_size))
    outcome = _execute(spec, out, executor, checked, retry_failed=not no_retry_failed)
    if outcome.failed:
        sys.exit(1)  # typer.Exit(code) is swallowed by main() (standalone_mode=False)


def _print_status(root: Path) -> None:
    from vitplast.sweep import sweep_status
    from vitplast.sweep.status import STATES
    from vitplast.sweep.task import kinds

    st = sweep_status(root)
    t = Table(title=f"sweep '{st.plan.name}' in {root}")
    t.add_column("kind")
    for s in STATES:
        t.add_column(s, justify="right")
    t.add_column("total", justify="right")
    for kind in kinds():
        c = st.counts(kind)
        if sum(c.values()):
            t.add_row(kind.name, *[str(c[s]) for s in STATES], str(sum(c.values())))
    c = st.counts()
    t.add_row("all", *[str(c[s]) for s in STATES], str(sum(c.values())), style="bold")
    Console().print(t)
    for task in st.failed()[:20]:
        Console().print(f"failed {task.id} {task.describe()}: {st.errors.get(task.id, '')}")
    if len(st.failed()) > 20:
        Console().print(f"... and {len(st.failed()) - 20} more failed tasks")
    if st.extra_dirs:
        Console().print(f"{len(st.extra_dirs)} task directories are not in the current plan (ignored by results.csv)")


@app.command()
def report(
    sweep_dir: Annotated[Path, typer.Argument(help="a sweep directory (from vitplast sweep or reproduce)")],
    pdf: Annotated[bool, typer.Option("--pdf", help="also write every figure as PDF (default: PNG only)")] = False,
    no_figures: Annotated[bool, typer.Option("--no-figures", help="tables and pages only (fast)")] = False,
    selectors: Annotated[bool, typer.Option(
        "--selectors", help="first score the rival selectors (gradient norm, Fisher, Auto-RGN, Taylor, parameter "
        "count, random) on the sweep's models and targets, for the selector benchmark; writes "
        "DIR/selectors/scores.csv (about a minute per target on CPU)")] = False,
) -> None:
    """Write DIR/report/: report.html (self-contained), report.md, figures (PNG), tables (CSV + Markdown).

    tables/claims.* lists every tested claim and baseline with its test, effect, 95 % interval, raw and
    Holm-adjusted p and verdict (docs/statistics.md). The selector benchmark compares the sweep's plasticity
    with the rival selectors scored by --selectors (docs/selectors.md)."""
    if selectors:  # both steps start by loading the plan: a clear error before any work when DIR is not a sweep
        _score_selectors(sweep_dir)
    _report(sweep_dir, pdf, not no_figures)


def _score_selectors(root: Path) -> None:
    from vitplast.cli.progress import rich_progress
    from vitplast.report.selectors import score_plan

    with rich_progress(console) as progress:
        path = score_plan(root, progress=progress)
    print(f"selector scores: {path}")


def _report(root: Path, pdf: bool = False, figures: bool = True) -> Any:
    from vitplast.cli.progress import rich_progress
    from vitplast.report import make_report

    with rich_progress(console) as progress:
        rep = make_report(root, figures=figures, pdf=pdf, progress=progress)
    _print_claims(rep.claims)
    if not rep.vs_probe.empty:
        from vitplast.report.vsprobe import summary

        console.print(summary(rep.vs_probe))
    print(f"report: {rep.out / 'report.html'}")
    return rep


def _print_claims(claims: Any) -> None:
    t = Table(title="Claims of the paper")
    t.add_column("claim")
    t.add_column("status")
    t.add_column("effect [95 % CI]")
    t.add_column("p (Holm)")
    colours = {"supported": "green", "not supported": "red", "inconclusive": "yellow"}
    for _, r in claims.iterrows():
        c = colours.get(r["status"], "white")
        eff = "" if r["effect"] != r["effect"] else f"{r['effect']:+.3g} {r['unit']}"
        if r["ci_low"] == r["ci_low"]:
            eff += f" [{r['ci_low']:+.3g}, {r['ci_high']:+.3g}]"
        p = "" if r["p"] != r["p"] else f"{r['p']:.3g} ({r['p_holm']:.3g})"
        t.add_row(str(r["claim"]), f"[{c}]{r['status']}[/{c}]", eff, p)
    Console().print(t)


@app.command()
@options_from(Fields(SuiteOptions, "options"), Fields(Resources, "resources", build=False))
def reproduce(
    suite: Annotated[str, typer.Option("--suite", help="mini (offline, micro-ViT, 2 CPU cores), paper (the paper's full grid) or units (per-block unit sets against last-k, docs/units-evidence.md)")] = next(iter(SUITES)),
    out: Annotated[Path | None, typer.Option("--out", help="sweep directory (default vitplast-out/reproduce-SUITE)")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="write the sweep YAML, print runs, steps and cost; run nothing")] = False,
    options: SuiteOptions | None = None,
    resources: dict[str, Any] | None = None,
    executor: ExecOpt = "auto",
) -> None:
    """Run the paper's protocol (a built-in sweep) and write its report; --dry-run only plans it."""
    from vitplast.io import write_text_atomic
    from vitplast.suites import suite_of
    from vitplast.sweep import build_plan

    assert options is not None and resources is not None  # filled by options_from
    chosen = suite_of(suite)
    check_model_spec(options.model, "--model")
    checked = _resources(executor, resources)
    out = out or chosen.default_out(options)
    spec = chosen.spec(options, True, out)  # the whole design, stages still to come projected
    plan = build_plan(spec)
    est = chosen.estimate(plan)
    for line in chosen.summary(spec, plan, est, options, out):
        console.print(line)
    if dry_run:
        path = out / "sweep.yaml"
        write_text_atomic(path, chosen.yaml_header() + spec.to_yaml())
        print(chosen.dry_run_line(est, path))
        return
    spec = chosen.spec(options, False, out)
    while True:  # a staged suite: run a stage, then plan the next from its results, until nothing is added
        outcome = _execute(spec, out, executor, checked)
        nxt = chosen.spec(options, False, out)
        if outcome.failed or {t.id for t in build_plan(nxt).tasks} <= {t.id for t in build_plan(spec).tasks}:
            break
        spec = nxt
    from vitplast.report.selectors import SCORES_FILE

    if chosen.score_selectors and not (out / SCORES_FILE).is_file():
        _score_selectors(out)
    if chosen.report is not None:
        for path in chosen.report(out):
            print(f"{chosen.name}: {path}")
    else:
        _report(out)
    if outcome.failed:
        sys.exit(1)  # typer.Exit(code) is swallowed by main() (standalone_mode=False)
