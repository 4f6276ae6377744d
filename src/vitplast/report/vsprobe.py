"""Every finetuned group against a reference scored once per target: the linear probe (``tables/vs_probe.*``) and
the LP-FT start (``tables/vs_start.*``; ``docs/statistics.md``).

Per ``(model, optimizer, target, group)`` at the group's best lr: the difference ``acc_mean - <reference>_acc``
with the seed-level two-stage t test of :func:`vitplast.report.claims.difference_claim` on that one target (the
group's seeds x test images against the reference's per-image record, a group of one, or of one record per seed
where the reference depends on the seed), its 95 % interval, raw p, and the power and verdict of
:func:`vitplast.report.claims.decide`. The tests against one reference form their own family (``vs-probe``,
``vs-start``), Holm-adjusted within it (over every cell of the report), so that the primary and secondary families
keep their size. A cell *beats the reference significantly* when its verdict is ``supported``. Against the start,
the effect is what finetuning adds to its own starting point (the probe head on the frozen backbone).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from vitplast.report import claims as C
from vitplast.report import evidence as E
from vitplast.report.figures import label, ordered_groups
from vitplast.report.stats import KEYS


@dataclass(frozen=True)
class Versus:
    """A reference the groups are compared with: its group in the evidence, family, accuracy column and names."""

    group: str
    family: str
    column: str
    name: str
    a_name: str

    @property
    def columns(self) -> list[str]:
        return [*KEYS, "best_lr", "n_seeds", "acc_mean", self.column, "effect", "ci_low", "ci_high", "se", "df", "p",
                "p_holm", "power", "status", "evidence"]


PROBE = Versus(E.PROBE, "vs-probe", "probe_acc", "the linear probe", "a linear probe")
START = Versus(E.START, "vs-start", "start_acc", "the LP-FT start", "an LP-FT start")
FAMILY = PROBE.family
COLUMNS = PROBE.columns


def _one_target(ev: E.Evidence, ds: str) -> E.Evidence:
    pick = lambda d: {ds: d[ds]} if ds in d else {}  # noqa: E731
    return E.Evidence(ev.model, ev.optimizer, pick(ev.acc), pick(ev.hits), pick(ev.clusters))


def versus(best: pd.DataFrame, evidence: list[E.Evidence], ref: Versus) -> pd.DataFrame:
    """One row per cell of ``best`` whose target has the reference (module docstring); ``ref.columns``."""
    scopes = {(ev.model, ev.optimizer): ev for ev in evidence}
    rows, claims = [], []
    for (model, opt, ds), t in best.groupby(["model", "optimizer", "dataset"], sort=True):
        ev = scopes.get((str(model), str(opt)))
        if ev is None or ref.group not in ev.acc.get(str(ds), {}):
            continue
        one = _one_target(ev, str(ds))
        cells = t.set_index("group")
        for g in ordered_groups([str(x) for x in cells.index]):
            r = cells.loc[g]
            claims.append(C.difference_claim(one, f"{label(g)} beats {ref.name} on {ds}", [g], [ref.group],
                                             kind="comparison", family=ref.family))
            rows.append({"model": model, "optimizer": opt, "dataset": ds, "group": g, "best_lr": r["best_lr"],
                         "n_seeds": r["n_seeds"], "acc_mean": r["acc_mean"], ref.column: ev.acc[str(ds)][ref.group]})
    C.decide(claims)
    for row, c in zip(rows, claims, strict=True):
        row |= {k: getattr(c, k) for k in ref.columns if k not in row}
    return pd.DataFrame(rows, columns=ref.columns)


def vs_probe(best: pd.DataFrame, evidence: list[E.Evidence]) -> pd.DataFrame:
    """Every cell against the linear probe (:func:`versus`)."""
    return versus(best, evidence, PROBE)


def vs_start(best: pd.DataFrame, evidence: list[E.Evidence]) -> pd.DataFrame:
    """Every cell against its LP-FT start (:func:`versus`)."""
    return versus(best, evidence, START)


def summary(table: pd.DataFrame, ref: Versus = PROBE) -> str:
    """"k of n (target, group) cells beat <the reference> significantly; these do not: ..." (one sentence)."""
    if table.empty:
        return f"No finetuned (target, group) cell has {ref.a_name} to compare with."
    many = table[["model", "optimizer"]].drop_duplicates().shape[0] > 1
    win = table["status"] == C.SUPPORTED
    text = (f"{int(win.sum())} of {len(table)} (target, group) cells beat {ref.name} significantly "
            f"(seed-level t at the best lr, Holm within the {ref.family} family of {int(table['p'].notna().sum())} "
            "tests)")
    if win.all():
        return text + "."
    others = []
    for _, r in table[~win].iterrows():
        scope = f"{r['model']}, {r['optimizer']}: " if many else ""
        if pd.isna(r["p"]):
            what = "no test" if pd.notna(r["effect"]) else "no result"
            num = f"{100 * r['effect']:+.2f} pp, {what}" if pd.notna(r["effect"]) else what
        else:
            num = (f"{100 * r['effect']:+.2f} pp [{100 * r['ci_low']:+.2f}, {100 * r['ci_high']:+.2f}], "
                   f"Holm p {r['p_holm']:.3g}, {r['status']}")
        others.append(f"{scope}{r['dataset']} {label(str(r['group']))} ({num})")
    return f"{text}; these do not: " + "; ".join(others) + "."
