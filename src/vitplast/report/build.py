"""``vitplast report DIR``: statistics, claims, figures and tables of a sweep, in ``DIR/report/``.

Layout: ``report.html`` (self-contained), ``report.md`` (same content, figures linked), ``figures/``
(PNG; PDF too with ``pdf=True``), ``tables/`` (CSV + Markdown; ``claims.*`` holds every tested claim and
baseline with raw and Holm-adjusted p, interval and verdict; ``vs_probe.*`` every group against the probe and
``vs_start.*`` against its LP-FT start on every target; ``convergence.*`` how many runs peak at their last
evaluation; see ``docs/statistics.md``). The tables of the sweep are rebuilt from its task directories
first, so the report always reflects what is on disk (a partial sweep gives a partial report, which says
so). Everything is staged and moved into place at the end (a failed report leaves the old one intact).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vitplast.components import COMPONENTS
from vitplast.io import output_dir, write_text_atomic
from vitplast.progress import Progress, phase
from vitplast.report import claims as C
from vitplast.report import convergence as CV
from vitplast.report import evidence as E
from vitplast.report import html as H
from vitplast.report import inference as I
from vitplast.report import selectors as SB
from vitplast.report import stats as S
from vitplast.report import tables as T
from vitplast.report import vsprobe as V
from vitplast.sweep.kinds import PROBE, START
from vitplast.sweep.plan import Plan
from vitplast.sweep.results import SweepTables, collect, read_metrics, write_tables
from vitplast.sweep.status import sweep_status
from vitplast.sweep.task import kinds


@dataclass
class Report:
    """What :func:`make_report` computed (also written to disk)."""

    out: Path
    best: pd.DataFrame
    gains: pd.DataFrame
    tests: pd.DataFrame
    correlation: pd.DataFrame
    ranking: pd.DataFrame
    claims: pd.DataFrame
    vs_probe: pd.DataFrame
    vs_start: pd.DataFrame = field(default_factory=pd.DataFrame)
    convergence: pd.DataFrame = field(default_factory=pd.DataFrame)
    figures: list[Path] = field(default_factory=list)


def run_curve_stats(rows: list[dict[str, Any]], group: str) -> dict[str, float]:
    """``grad_norm``: mean over steps of the pre-clipping gradient norm of the trained parameters without the
    head (sqrt of the sum of squared group norms; ``full``: every group but the head); ``final_val_loss``."""
    train = [r for r in rows if r.get("kind") == "train" and not r.get("diverged")]
    evals = [r for r in rows if r.get("kind") == "eval"]
    norms = [_group_norm(r, group) for r in train]
    finite = [n for n in norms if math.isfinite(n)]
    return {
        "grad_norm": float(np.mean(finite)) if finite else math.nan,
        "final_val_loss": float(evals[-1]["val_loss"]) if evals else math.nan,
    }


def _group_norm(row: dict[str, Any], group: str) -> float:
    groups = row.get("grad_norm_groups") or {}
    names = [g for g in groups if g != "head"] if group == "full" else group.split("+")
    vals = [float(groups[g]) for g in names if g in groups]
    return math.sqrt(sum(v * v for v in vals)) if vals else math.nan


def with_curve_stats(root: Path, runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` (results.csv rows) with ``grad_norm`` and ``final_val_loss`` from each done run's metrics."""
    if runs.empty:
        return runs
    extra = []
    for _, r in runs.iterrows():
        if r["status"] != "done":
            extra.append({"grad_norm": math.nan, "final_val_loss": math.nan})
            continue
        extra.append(run_curve_stats(read_metrics(root, str(r["id"])), str(r["group"])))
    return pd.concat([runs.reset_index(drop=True), pd.DataFrame(extra)], axis=1)


def curves_table(root: Path, runs: pd.DataFrame, best: pd.DataFrame) -> pd.DataFrame:
    """Long table of the gradient-norm and validation-loss curves of every seed at each group's best lr."""
    if runs.empty or best.empty:
        return pd.DataFrame(columns=[*S.KEYS, "seed", "kind", "step", "value"])
    sel = runs.merge(best[[*S.KEYS, "best_lr"]], on=S.KEYS)
    sel = sel[np.isclose(sel["lr"], sel["best_lr"])]
    rows = []
    for _, r in sel.iterrows():
        key = {k: r[k] for k in S.KEYS} | {"seed": r["seed"]}
        for m in read_metrics(root, str(r["id"])):
            if m.get("kind") == "train" and not m.get("diverged"):
                rows.append(key | {"kind": "grad", "step": m["step"], "value": _group_norm(m, str(r["group"]))})
            elif m.get("kind") == "eval":
                rows.append(key | {"kind": "val_loss", "step": m["step"], "value": m["val_loss"]})
    return pd.DataFrame(rows, columns=[*S.KEYS, "seed", "kind", "step", "value"])


def _predictors(comp: pd.DataFrame, runs: pd.DataFrame) -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, dict[str, dict[str, float]]]]:
    """Per model label: ``{dataset: {component: plasticity}}`` and ``{dataset: {component: trainable params
    without the head}}`` (the count is the same on every dataset)."""
    plast: dict[str, dict[str, dict[str, float]]] = {}
    for m, d, c, v in zip(comp["model"].tolist(), comp["dataset"].tolist(), comp["component"].tolist(),
                          comp["plasticity"].tolist(), strict=True):
        plast.setdefault(str(m), {}).setdefault(str(d), {})[str(c)] = float(v)
    params: dict[str, dict[str, dict[str, float]]] = {}
    if not runs.empty and "status" in runs:
        done = runs[runs["status"] == "done"]
        for g in COMPONENTS:
            col = f"trainable_params_{g}"
            if col not in done:
                continue
            for (model, ds), t in done[done["group"] == g].groupby(["model_label", "dataset"]):
                vals = pd.to_numeric(t[col], errors="coerce").dropna()
                if len(vals):
                    params.setdefault(str(model), {}).setdefault(str(ds), {})[g] = float(vals.iloc[0])
    return plast, params


def test_claims(evidence: list[E.Evidence], comp: pd.DataFrame, results: pd.DataFrame) -> list[C.Claim]:
    """The tested claims and baselines of every ``(model, optimizer)`` (before Holm and the verdicts)."""
    plast, params = _predictors(comp, results)
    out: list[C.Claim] = []
    for ev in evidence:
        out += C.finetune_claims(ev, plast.get(ev.model), params.get(ev.model))
    return out


def adjust(claims: list[C.Claim], tests: pd.DataFrame, corr: pd.DataFrame) -> None:
    """Holm per family (docs/statistics.md): the primary claims alone; the secondary claims with every other
    p-value the report shows (MHA-vs-group tests, correlations). Tests that cannot pass their family's corrected
    level are excluded first. Writes ``p_holm`` (and ``w_p_holm``) and decides the claims."""
    extra_p = np.concatenate([tests.get("w_p", pd.Series(dtype=float)).to_numpy(float),
                              _not_pooled(corr)])
    extra_min = np.concatenate([tests.get("w_p_min", pd.Series(dtype=float)).to_numpy(float),
                                corr.get("p_min", pd.Series(dtype=float)).to_numpy(float)])
    for fam in (C.PRIMARY, C.SECONDARY):
        members = [c for c in claims if c.family == fam]
        k = len(members)
        more_p, more_min = (extra_p, extra_min) if fam == C.SECONDARY else (np.array([]), np.array([]))
        adj, excluded, m = I.family(np.concatenate([[c.p for c in members], more_p]),
                                    np.concatenate([[c.p_min for c in members], more_min]), C.ALPHA)
        for c, pa, ex in zip(members, adj[:k], excluded[:k], strict=True):
            c.p_holm, c.excluded = float(pa), bool(ex)
        C.decide(members, m)
        if fam == C.SECONDARY:
            if len(tests):
                tests["w_p_holm"] = adj[k: k + len(tests)]
                tests["excluded"] = excluded[k: k + len(tests)]
            if len(corr):
                corr["p_holm"] = adj[k + len(tests):]
                corr["excluded"] = excluded[k + len(tests):]


def _not_pooled(corr: pd.DataFrame) -> np.ndarray:
    """The correlations' p-values for the secondary family; the pooled row is the primary claim's statistic
    (there one-sided, on accuracies: the same ranks) and is not tested twice (NaN)."""
    if corr.empty or "p" not in corr:
        return np.array([])
    return np.where(corr["scope"] == "pooled", np.nan, corr["p"].to_numpy(float))


def make_report(root: str | Path, *, figures: bool = True, pdf: bool = False,
                progress: Progress | None = None) -> Report:
    """Compute and write the report of the sweep in ``root`` (module docstring); ``figures=False`` writes
    tables and pages only, ``pdf=True`` adds a PDF beside every PNG; ``progress`` sees the phases."""
    root = Path(root)
    advance = phase(progress, "report", 4)
    plan = Plan.load(root)
    tables = collect(root, plan)  # written with the report, once every input was read
    status = sweep_status(root)
    results = with_curve_stats(root, tables.runs)
    runs = S.runs_frame(results)
    probes = S.probes_frame(tables.probes)
    means = S.seed_means(runs)
    best = S.best_lr(runs)
    gains = S.relative_gain(best, probes)
    tests = S.paired_tests(best, "mha")
    comp = S.component_plasticity(tables.plasticity)
    ranking = S.plasticity_ranking(comp)
    corr = S.plasticity_gain_correlation(comp, gains)
    advance(1)
    references = {E.PROBE: E.Reference.of(probes, "probe_acc", _dirs(plan, PROBE.name, root)),
                  E.START: E.Reference.of(S.starts_frame(tables.starts), "start_acc", _dirs(plan, START.name, root))}
    evidence = E.collect_evidence(root, runs, best, references)
    tested = test_claims(evidence, comp, tables.runs)
    adjust(tested, tests, corr)
    vs_probe, vs_start = V.vs_probe(best, evidence), V.vs_start(best, evidence)
    converged = CV.convergence(tables.runs)
    claims = C.claims_table([
        *tested,
        C.ranking_claim(ranking),
        *C.bounds_claims(tables.bounds, tables.plasticity, tables.analyses),
    ])
    advance(1)
    curves = curves_table(root, runs, best)
    bench = SB.benchmark(SB.sweep_scores(root, comp), gains)
    write_tables(root, plan, tables)
    out = root / "report"
    figs: list[tuple[Path, str]] = []
    with output_dir(out) as stage:
        fig_dir, tab_dir = stage / "figures", stage / "tables"
        if figures:
            from vitplast.report.figures import WITH_PDF

            token = WITH_PDF.set(pdf)
            try:
                figs = (_figures(fig_dir, tables, comp, means, gains, curves, T.staged(best))
                        + SB.write(bench, fig_dir, tab_dir))
            finally:
                WITH_PDF.reset(token)
        else:
            SB.write(bench, fig_dir, tab_dir, draw=False)
        advance(1)
        named = {
            "claims": claims,
            "vs_probe": vs_probe,
            "vs_start": vs_start,
            "convergence": converged,
            "accuracy": gains,
            "lr_means": means,
            "paired_tests": tests,
            "plasticity_gain_spearman": corr,
            "plasticity_ranking": ranking,
            "component_plasticity": comp,
            "probes": probes,
        }
        for name, df in named.items():
            write_text_atomic(tab_dir / f"{name}.csv", df.to_csv(index=False))
            write_text_atomic(tab_dir / f"{name}.md", T.to_markdown(df))
        pivots = {"accuracy_pivot": T.accuracy_pivot(gains), "gain_pivot": T.gain_pivot(gains),
                  "lr_sensitivity_pivot": T.sensitivity_pivot(best), "best_lr_pivot": T.best_lr_pivot(best)}
        for name, df in pivots.items():
            write_text_atomic(tab_dir / f"{name}.csv", df.to_csv())
            write_text_atomic(tab_dir / f"{name}.md", T.to_markdown(df, index=True))
        notes = {"edge": T.edge_text(best, means), "sensitivity": _sensitivity_note(best),
                 "vs_probe": V.summary(vs_probe), "vs_start": V.summary(vs_start, V.START),
                 "convergence": CV.sentence(converged)}
        versus = {"vs_probe": vs_probe, "vs_start": vs_start, "convergence": converged}
        page = _page(plan, status, claims, gains, best, tests, corr, ranking, tables, figs, pivots, notes, versus)
        SB.add_section(page, bench)
        write_text_atomic(stage / "report.html", page.render())
        write_text_atomic(stage / "report.md", _markdown(plan, status, claims, figs, pivots, tests, corr, ranking,
                                                         notes, versus) + SB.markdown(bench))
        advance(1)
    return Report(out, best, gains, tests, corr, ranking, claims, vs_probe, vs_start, converged,
                  [out / "figures" / p.name for p, _ in figs])


def _dirs(plan: Plan, kind: str, root: Path) -> dict[tuple[str, str], list[Path]]:
    """The folders of the tasks of ``kind`` per (model label, dataset label), in plan order."""
    out: dict[tuple[str, str], list[Path]] = {}
    for t in plan.of_kind(kind):
        out.setdefault((t.model, t.dataset), []).append(t.dir(root))
    return out


def _slices(gains: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    from vitplast.report import figures as F

    many = gains[["model", "optimizer"]].drop_duplicates().shape[0] > 1
    out = []
    for (model, opt), t in gains.groupby(["model", "optimizer"], sort=False):
        suffix = f"_{F.slug(f'{model}-{opt}')}" if many else ""
        out.append((suffix, f"{model}, {opt}", t))
    return out


def _figures(
    fig_dir: Path, tables: SweepTables, comp: pd.DataFrame, means: pd.DataFrame, gains: pd.DataFrame,
    curves: pd.DataFrame, staged: bool = False,
) -> list[tuple[Path, str]]:
    from vitplast.report import figures as F

    figs: list[tuple[Path | None, str]] = [
        (F.plasticity_figure(tables.plasticity, fig_dir / "plasticity.png"),
         "Plasticity of each component per layer (mean and 95 % CI over source/target pairs)."),
    ]
    for p in F.bounds_figures(tables.bounds, tables.plasticity, fig_dir):
        figs.append((p, f"Upper bounds beside the measured plasticity ({p.stem.removeprefix('bounds_')})."))
    for suffix, scope, g in _slices(gains):
        m = means.merge(g[["model", "optimizer"]].drop_duplicates(), on=["model", "optimizer"])
        c = curves.merge(g[["model", "optimizer"]].drop_duplicates(), on=["model", "optimizer"])
        figs += [
            (F.accuracy_figure(g, fig_dir / f"accuracy{suffix}.png", f"Test accuracy at the best lr ({scope})"),
             f"Test accuracy of each trainable group at its best learning rate, mean ± std over seeds; dashed: linear probe ({scope})."),
            (F.gain_figure(g, fig_dir / f"gain{suffix}.png", f"Relative gain over the linear probe ({scope})"),
             f"(accuracy - probe) / probe in percent ({scope})."),
            (F.lr_figure(m, fig_dir / f"lr_sensitivity{suffix}.png", f"Accuracy against the learning rate ({scope})"),
             ("Test accuracy of the pilot seed at each learning rate (staged design: the other seeds ran at the "
              "chosen lr only)" if staged else "Seed-mean test accuracy at each learning rate")
             + f": the spread is the lr sensitivity ({scope})."),
            (F.curves_figure(c, fig_dir / f"curves{suffix}.png", f"Gradient norm and validation loss at the best lr ({scope})"),
             f"Pre-clipping gradient norm of the trained component (top) and validation loss (bottom), averaged over seeds ({scope})."),
            (F.plasticity_gain_figure(comp, g, fig_dir / f"plasticity_vs_gain{suffix}.png",
                                      f"Plasticity against finetuning gain ({scope})"),
             f"Each point: one component on one dataset; x its plasticity, y the relative gain of finetuning it alone ({scope})."),
        ]
    return [(p, cap) for p, cap in figs if p is not None]


NO_SENSITIVITY = "Each configuration ran at a single learning rate: no lr sensitivity to report."


def _has_sensitivity(best: pd.DataFrame) -> bool:
    return not best.empty and bool(best["lr_sensitivity"].notna().any())


def _sensitivity_note(best: pd.DataFrame) -> str:
    """What the lr-sensitivity table shows (empty: nothing to show)."""
    if not _has_sensitivity(best):
        return ""
    if T.staged(best):
        return ("max - min over lrs of the test accuracy on the seeds every lr has run; marked (pilot seed): one "
                "seed per lr (staged design), so the spread includes that seed's noise.")
    return "max - min over lrs of the seed-mean test accuracy."


def _counts_text(status: Any) -> str:
    parts = []
    for kind in kinds():
        c = status.counts(kind)
        total = sum(c.values())
        if total:
            extra = ", ".join(f"{v} {k}" for k, v in c.items() if v and k != "done")
            parts.append(f"{kind.name}: {c['done']}/{total} done" + (f" ({extra})" if extra else ""))
    return "; ".join(parts)


CLAIMS_NOTE = ("effect: accuracy difference (pp: fraction of images, 0.01 = 1 point) or mean within-target Spearman "
               "rho; ci: 95 % seed-level t interval (seeds within groups, then test images); p_holm: Holm-adjusted "
               "within the claim's family (primary: declared in advance; secondary: every other p-value of this "
               "report); power: of the test at the family's corrected level for min_effect, the declared smallest "
               "effect of interest (docs/statistics.md).")


VS_PROBE_NOTE = ("effect: acc_mean - probe_acc at the group's best lr (fraction of images); ci: 95 % seed-level t "
                 "interval (the probe's per-image record as a group of one); p_holm: Holm-adjusted within the "
                 "vs-probe family (these tests only, apart from the claims' families); power and status: the "
                 "claims' rule (docs/statistics.md).")


VS_START_NOTE = ("effect: acc_mean - start_acc at the group's best lr: what finetuning adds to its own start (the "
                 "probe head fitted on the classifier's input of the frozen backbone, scored before any step); ci, "
                 "power and status as against the probe; p_holm: Holm-adjusted within the vs-start family (these "
                 "tests only; descriptive, apart from the claims' families; docs/statistics.md).")
CONVERGENCE_NOTE = ("n_at_last: finished runs (every lr and seed) whose best validation accuracy is at their last "
                    "step; share = n_at_last / n_runs; n_diverged: runs stopped by a non-finite loss or gradient.")


def _headline(claims: pd.DataFrame) -> tuple[str, str]:
    rows = claims[claims["claim"] == "Plasticity predicts the finetuning order"]
    if rows.empty:
        return "No finetuning results of the single components with plasticity measurements yet.", "inconclusive"
    r = rows.iloc[0]
    num = "" if pd.isna(r["effect"]) else (f"mean within-target rho {r['effect']:+.2f}, "
                                          f"p = {r['p']:.3g} (Holm {r['p_holm']:.3g}); ")
    return f"Did plasticity predict which components finetune best? {r['status'].upper()}: {num}{r['evidence']}.", \
        str(r["status"])


def _page(
    plan: Plan, status: Any, claims: pd.DataFrame, gains: pd.DataFrame, best: pd.DataFrame, tests: pd.DataFrame,
    corr: pd.DataFrame, ranking: pd.DataFrame, tables: SweepTables, figures: list[tuple[Path, str]],
    pivots: dict[str, pd.DataFrame], notes: dict[str, str], versus: dict[str, pd.DataFrame],
) -> H.Page:
    intro = H.paragraph(f"Sweep '{plan.name}' — {_counts_text(status)}. Generated {time.strftime('%Y-%m-%d %H:%M')}.",
                        "note")
    if not status.complete:
        intro += H.paragraph("The sweep is not complete: the statistics below use the finished runs only.", "note")
    text, st = _headline(claims)
    page = H.Page(f"vitplast report: {plan.name}", intro + H.verdict(text, st))
    page.add("Claims of the paper",
             H.paragraph(CLAIMS_NOTE, "note"),
             H.table(claims.drop(columns=["rule"]), status_col="status"),
             H.details("Decision rules", H.table(claims[["claim", "rule"]].drop_duplicates())))
    page.add("Finetuning against the linear probe", H.paragraph(notes["vs_probe"]),
             H.paragraph(VS_PROBE_NOTE, "note"), H.table(versus["vs_probe"], status_col="status"))
    page.add("Finetuning against its LP-FT start", H.paragraph(notes["vs_start"]),
             H.paragraph(VS_START_NOTE, "note"), H.table(versus["vs_start"], status_col="status"))
    page.add("Convergence within the budget", H.paragraph(notes["convergence"]),
             H.paragraph(CONVERGENCE_NOTE, "note"), H.table(versus["convergence"]))
    page.add("Figures", *[H.image(p, cap) for p, cap in figures])
    page.add("Accuracy at the best learning rate (%)",
             H.paragraph("Best lr = the lr with the highest seed-mean validation accuracy; test accuracy mean ± "
                         "sample std (ddof = 1) over seeds at that lr.", "note"),
             H.table(pivots["accuracy_pivot"], index=True),
             H.paragraph(notes["edge"], "note"),
             H.details("Best learning rate ((edge): the smallest or largest lr tried)",
                       H.table(pivots["best_lr_pivot"], index=True)))
    page.add("Relative gain over the linear probe (%)", H.table(pivots["gain_pivot"], index=True))
    page.add("Learning-rate sensitivity (accuracy points, max - min over lrs)",
             *((H.paragraph(notes["sensitivity"], "note"), H.table(pivots["lr_sensitivity_pivot"], index=True))
               if _has_sensitivity(best) else (H.paragraph(NO_SENSITIVITY, "note"),)))
    page.add("MHA against each other group (paired over datasets)",
             H.paragraph("Exact one-sided signed-rank test, H1: MHA better (zeros dropped, mid-ranks for ties); "
                         "w_p_holm: Holm-adjusted in the secondary family; w_p_min: the smallest p the test can give "
                         "with n datasets (excluded: it cannot pass the family's corrected level).",
                         "note"),
             H.table(tests))
    page.add("Spearman: component plasticity vs relative gain", H.table(corr))
    page.add("Measured plasticity ranking", H.table(ranking))
    if not tables.analyses.empty:
        page.add("Plasticity analyses", H.table(tables.analyses))
    failed = tables.runs[tables.runs["status"] == "failed"] if not tables.runs.empty else pd.DataFrame()
    if not failed.empty:
        page.add("Failed runs", H.table(failed[["id", "dataset", "group", "lr", "seed", "error"]]))
    return page


def _markdown(
    plan: Plan, status: Any, claims: pd.DataFrame, figures: list[tuple[Path, str]], pivots: dict[str, pd.DataFrame],
    tests: pd.DataFrame, corr: pd.DataFrame, ranking: pd.DataFrame, notes: dict[str, str],
    versus: dict[str, pd.DataFrame],
) -> str:
    text, _ = _headline(claims)
    parts = [f"# vitplast report: {plan.name}\n", f"{_counts_text(status)}\n", f"**{text}**\n",
             "## Claims\n", T.to_markdown(claims.drop(columns=["rule"])),
             "## Finetuning against the linear probe\n", f"{notes['vs_probe']}\n", f"{VS_PROBE_NOTE}\n",
             T.to_markdown(versus["vs_probe"]),
             "## Finetuning against its LP-FT start\n", f"{notes['vs_start']}\n", f"{VS_START_NOTE}\n",
             T.to_markdown(versus["vs_start"]),
             "## Convergence within the budget\n", f"{notes['convergence']}\n", f"{CONVERGENCE_NOTE}\n",
             T.to_markdown(versus["convergence"]),
             "## Accuracy at the best learning rate (%)\n", T.to_markdown(pivots["accuracy_pivot"], index=True),
             f"{notes['edge']}\n", "## Best learning rate\n", T.to_markdown(pivots["best_lr_pivot"], index=True),
             "## Relative gain over the linear probe (%)\n", T.to_markdown(pivots["gain_pivot"], index=True),
             "## Learning-rate sensitivity (accuracy points)\n",
             (f"{notes['sensitivity']}\n\n" + T.to_markdown(pivots["lr_sensitivity_pivot"], index=True))
             if notes["sensitivity"] else NO_SENSITIVITY + "\n",
             "## MHA against each other group\n", T.to_markdown(tests),
             "## Spearman: plasticity vs relative gain\n", T.to_markdown(corr),
             "## Measured plasticity ranking\n", T.to_markdown(ranking), "## Figures\n"]
    parts += [f"![{cap}](figures/{p.name})\n\n{cap}\n" for p, cap in figures]
    return "\n".join(parts)
