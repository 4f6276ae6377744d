"""Every finetuned group against the linear probe (``tables/vs_probe.*``, ``docs/statistics.md``).

Per ``(model, optimizer, target, group)`` at the group's best lr: the difference ``acc_mean - probe_acc`` with
the seed-level two-stage t test of :func:`vitplast.report.claims.difference_claim` on that one target (the
group's seeds x test images against the probe's per-image record, a group of one), its 95 % interval, raw p,
and the power and verdict of :func:`vitplast.report.claims.decide`. These tests form their own family,
``vs-probe``, Holm-adjusted within it (over every cell of the report), so that the primary and secondary
families keep their size. A cell *beats the probe significantly* when its verdict is ``supported``.
"""

from __future__ import annotations

import pandas as pd

from vitplast.report import claims as C
from vitplast.report import evidence as E
from vitplast.report.figures import label, ordered_groups
from vitplast.report.stats import KEYS

FAMILY = "vs-probe"
COLUMNS = [*KEYS, "best_lr", "n_seeds", "acc_mean", "probe_acc", "effect", "ci_low", "ci_high", "se", "df", "p",
           "p_holm", "power", "status", "evidence"]


def _one_target(ev: E.Evidence, ds: str) -> E.Evidence:
    pick = lambda d: {ds: d[ds]} if ds in d else {}  # noqa: E731
    return E.Evidence(ev.model, ev.optimizer, pick(ev.acc), pick(ev.hits), pick(ev.clusters))


def vs_probe(best: pd.DataFrame, evidence: list[E.Evidence]) -> pd.DataFrame:
    """One row per cell of ``best`` whose target has a probe (module docstring); ``COLUMNS``."""
    scopes = {(ev.model, ev.optimizer): ev for ev in evidence}
    rows, claims = [], []
    for (model, opt, ds), t in best.groupby(["model", "optimizer", "dataset"], sort=True):
        ev = scopes.get((str(model), str(opt)))
        if ev is None or E.PROBE not in ev.acc.get(str(ds), {}):
            continue
        one = _one_target(ev, str(ds))
        cells = t.set_index("group")
        for g in ordered_groups([str(x) for x in cells.index]):
            r = cells.loc[g]
            claims.append(C.difference_claim(one, f"{label(g)} beats the linear probe on {ds}", [g], [E.PROBE],
                                             kind="comparison", family=FAMILY))
            rows.append({"model": model, "optimizer": opt, "dataset": ds, "group": g, "best_lr": r["best_lr"],
                         "n_seeds": r["n_seeds"], "acc_mean": r["acc_mean"], "probe_acc": ev.acc[str(ds)][E.PROBE]})
    C.decide(claims)
    for row, c in zip(rows, claims, strict=True):
        row |= {k: getattr(c, k) for k in COLUMNS if k not in row}
    return pd.DataFrame(rows, columns=COLUMNS)


def summary(table: pd.DataFrame) -> str:
    """"k of n (target, group) cells beat the probe significantly; these do not: ..." (one sentence)."""
    if table.empty:
        return "No finetuned (target, group) cell has a linear probe to compare with."
    many = table[["model", "optimizer"]].drop_duplicates().shape[0] > 1
    win = table["status"] == C.SUPPORTED
    text = (f"{int(win.sum())} of {len(table)} (target, group) cells beat the linear probe significantly "
            f"(seed-level t at the best lr, Holm within the {FAMILY} family of {int(table['p'].notna().sum())} tests)")
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
