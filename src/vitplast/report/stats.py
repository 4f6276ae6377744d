"""The statistics of the report (docs/statistics.md), on tidy tables.

Inputs are normalised by :func:`runs_frame` / :func:`probes_frame` to the columns ``model``,
``optimizer``, ``dataset``, ``group``, ``lr``, ``seed``, ``acc`` (test accuracy of the best-validation
checkpoint; NaN for a run that diverged before its first evaluation) and ``probe_acc``. Definitions:

* seed mean / std at one lr: mean and sample standard deviation (``ddof=1``; NaN with one seed) of
  ``acc`` over seeds. A NaN accuracy makes the mean at that lr NaN (a diverged seed is not averaged away);
* best lr of ``(model, optimizer, dataset, group)``: the lr with the highest seed-mean *validation*
  accuracy of the best checkpoints (``val_acc``; the test accuracy where no validation accuracy was
  recorded), so that the test set never chooses the lr (ties: the smallest lr; NaN means never win). The
  mean is over the seeds that every lr of the group has run: all seeds in a full grid, the pilot seed in a
  staged design (one seed over the lr grid, the other seeds at the chosen lr; ``docs/mini-protocol.md``),
  so that lrs are compared on equal terms. The reported accuracy is the test mean +- std over all seeds at
  that lr;
* relative gain: ``(acc_mean - probe_acc) / probe_acc`` at the best lr;
* lr sensitivity: ``max - min`` over lrs of the test accuracy averaged over the seeds every lr has run
  (``acc_shared``: all seeds in a full grid, the pilot seed in a staged design, so that a 3-seed mean is never
  set against 1-seed values; NaN means ignored); NaN where fewer than two lrs have a value (one lr says
  nothing about sensitivity). ``lr_seeds``: how many seeds that comparison and the lr choice used;
* lr on the edge (``lr_on_edge``): the best lr is the smallest or the largest lr tried for the cell (at least
  two tried): the optimum may lie beyond the grid;
* paired tests of a reference group (MHA) against each other group across datasets, per model and
  optimizer, on the best-lr seed-mean accuracies: the exact one-sided signed-rank test of
  :func:`vitplast.report.inference.signed_rank_test` (ties and zeros handled as stated there);
* Spearman between a component's plasticity (its per-layer means averaged over layers) and the relative
  gain of finetuning that component alone: per dataset (5 points, exact permutation p) and pooled as the
  mean of the within-dataset rhos with a within-dataset permutation p (raw gains of different datasets
  are never ranked together). See ``docs/statistics.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from vitplast.components import COMPONENTS, THEORY_RANKING
from vitplast.report.inference import signed_rank_test, stratified_rank_test

KEYS = ["model", "optimizer", "dataset", "group"]
RUN_COLUMNS = [*KEYS, "lr", "seed", "acc"]


def runs_frame(results: pd.DataFrame) -> pd.DataFrame:
    """Finished runs of a ``results.csv`` table in the normalised columns (plus any extra ones kept)."""
    if results.empty or "status" not in results:
        return pd.DataFrame(columns=RUN_COLUMNS)
    done = results[results["status"] == "done"].copy()
    done["model"] = done["model_label"] if "model_label" in done else done["model"]
    done["acc"] = pd.to_numeric(done["test_acc"], errors="coerce") if "test_acc" in done else math.nan
    done["lr"] = done["lr"].astype(float)
    done["seed"] = done["seed"].astype(int)
    done["val_acc"] = (pd.to_numeric(done["best_val_acc"], errors="coerce") if "best_val_acc" in done
                       else done["acc"])
    extra = [c for c in ("grad_norm", "final_val_loss", "id", "val_acc") if c in done]
    return done[[*RUN_COLUMNS, *extra]].reset_index(drop=True)


def probes_frame(probes: pd.DataFrame) -> pd.DataFrame:
    """``model``, ``dataset``, ``probe_acc`` of the finished probes of a ``probes.csv`` table."""
    return _reference_frame(probes, "probe_acc")


def starts_frame(starts: pd.DataFrame) -> pd.DataFrame:
    """``model``, ``dataset``, ``start_acc`` of the finished LP-FT starts of a ``starts.csv`` table: the test
    accuracy of the finetuning runs' start (probe head, no step); the mean over seeds where the start depends on
    the seed (random weights), else the one start of the target."""
    frame = _reference_frame(starts, "start_acc")
    return frame.groupby(["model", "dataset"], sort=True)["start_acc"].mean().reset_index()


def _reference_frame(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """``model`` (label), ``dataset``, ``column`` (the test accuracy) of the finished rows of a sweep table."""
    if table.empty or "status" not in table or "test_acc" not in table:
        return pd.DataFrame(columns=["model", "dataset", column])
    done = table[table["status"] == "done"]
    return pd.DataFrame(
        {"model": done["model_label"], "dataset": done["dataset"], column: done["test_acc"].astype(float)}
    ).reset_index(drop=True)


def _mean_keep_nan(x: pd.Series) -> float:
    return float(x.mean(skipna=False)) if len(x) else math.nan


def seed_means(runs: pd.DataFrame) -> pd.DataFrame:
    """Per ``(model, optimizer, dataset, group, lr)``: ``acc_mean``, ``acc_std`` (ddof=1), ``n_seeds``; and over
    the seeds every lr of the cell has run (:func:`_common_seed_val`): ``val_mean``, ``acc_shared``,
    ``n_shared``."""
    cols = [*KEYS, "lr", "acc_mean", "acc_std", "n_seeds", "val_mean", "acc_shared", "n_shared"]
    if runs.empty:
        return pd.DataFrame(columns=cols)
    g = runs.groupby([*KEYS, "lr"], sort=True)["acc"]
    out = pd.DataFrame(
        {"acc_mean": g.apply(_mean_keep_nan), "acc_std": g.std(ddof=1), "n_seeds": g.size()}
    ).reset_index()
    out = out.merge(_common_seed_val(runs), on=[*KEYS, "lr"], how="left")
    extra = [c for c in ("grad_norm", "final_val_loss") if c in runs]
    if extra:
        out = out.merge(runs.groupby([*KEYS, "lr"])[extra].mean().reset_index(), on=[*KEYS, "lr"], how="left")
    return out


def _common_seed_val(runs: pd.DataFrame) -> pd.DataFrame:
    """Per ``(*KEYS, lr)``, over the seeds that every lr of the group ``KEYS`` has run (all of its seeds when
    no lr shares all of them with the others): ``val_mean`` and ``acc_shared``, the mean validation and test
    accuracy, and ``n_shared``, the number of those seeds."""
    val = "val_acc" if "val_acc" in runs else "acc"
    rows = []
    for _, t in runs.groupby(KEYS, sort=True):
        per_lr = [set(s) for _, s in t.groupby("lr")["seed"]]
        common = set.intersection(*per_lr)
        g = (t[t["seed"].isin(common)] if common else t).groupby([*KEYS, "lr"])
        rows.append(pd.DataFrame({"val_mean": g[val].apply(_mean_keep_nan), "acc_shared": g["acc"].apply(_mean_keep_nan),
                                  "n_shared": g.size()}).reset_index())
    return pd.concat(rows, ignore_index=True)


def best_lr(runs: pd.DataFrame) -> pd.DataFrame:
    """Per ``(model, optimizer, dataset, group)``: ``best_lr``, ``acc_mean`` +- ``acc_std`` and ``n_seeds``
    at that lr, ``lr_sensitivity``, ``n_lrs``, ``lr_seeds`` and ``lr_on_edge`` (module docstring)."""
    sm = seed_means(runs)
    cols = [*KEYS, "best_lr", "acc_mean", "acc_std", "n_seeds", "lr_sensitivity", "n_lrs", "lr_seeds", "lr_on_edge"]
    if sm.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for key, t in sm.groupby(KEYS, sort=True):
        t = t.sort_values("lr")
        valid = t[t["acc_mean"].notna() & t["val_mean"].notna()]
        shared = t[t["acc_shared"].notna() & t["val_mean"].notna()]["acc_shared"]
        sens = float(shared.max() - shared.min()) if len(shared) >= 2 else math.nan
        if len(valid):
            best = valid.iloc[int(np.argmax(valid["val_mean"].to_numpy()))]  # first (smallest lr) among ties
            row = {"best_lr": best["lr"], "acc_mean": best["acc_mean"], "acc_std": best["acc_std"],
                   "n_seeds": int(best["n_seeds"])}
            row |= {c: best[c] for c in ("grad_norm", "final_val_loss") if c in t}
        else:
            row = {"best_lr": math.nan, "acc_mean": math.nan, "acc_std": math.nan, "n_seeds": 0}
        edge = len(t) >= 2 and row["best_lr"] in (t["lr"].iloc[0], t["lr"].iloc[-1])
        rows.append(dict(zip(KEYS, key, strict=True)) | row | {"lr_sensitivity": sens, "n_lrs": len(t),
                                                               "lr_seeds": int(t["n_shared"].min()), "lr_on_edge": edge})
    return pd.DataFrame(rows)


def relative_gain(best: pd.DataFrame, probes: pd.DataFrame) -> pd.DataFrame:
    """``best`` with ``probe_acc`` and ``gain = (acc_mean - probe_acc) / probe_acc`` (NaN without a probe)."""
    out = best.merge(probes[["model", "dataset", "probe_acc"]], on=["model", "dataset"], how="left")
    out["gain"] = (out["acc_mean"] - out["probe_acc"]) / out["probe_acc"]
    return out


def _paired(best: pd.DataFrame, a: str, b: str, value: str) -> pd.DataFrame:
    """Datasets where both groups have a value: columns ``dataset``, ``a``, ``b``."""
    x = best[best["group"] == a][["dataset", value]].rename(columns={value: "a"})
    y = best[best["group"] == b][["dataset", value]].rename(columns={value: "b"})
    return x.merge(y, on="dataset").dropna().sort_values("dataset").reset_index(drop=True)


def paired_test(a: Sequence[float] | np.ndarray | pd.Series, b: Sequence[float] | np.ndarray | pd.Series) -> dict[str, float]:
    """Paired comparison of ``a`` against ``b``: ``n``, ``mean_diff``, ``wins`` (a > b), ``w`` (W+), ``w_p``
    (exact one-sided signed-rank p, H1: a > b), ``ties``, ``zeros`` and ``w_p_min`` (the smallest p the
    test can give with these pairs)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n = len(x)
    r = signed_rank_test(x - y, "greater")
    return {"n": n, "mean_diff": float(np.mean(x - y)) if n else math.nan, "wins": int(np.sum(x > y)),
            "w": r.statistic, "w_p": r.p, "ties": r.ties, "zeros": r.zeros, "w_p_min": r.p_min if n else 1.0}


def paired_tests(best: pd.DataFrame, reference: str = "mha", value: str = "acc_mean") -> pd.DataFrame:
    """:func:`paired_test` of ``reference`` against every other group, across datasets, per model and
    optimizer (rows: ``model, optimizer, reference, other`` + the test fields + ``datasets``)."""
    rows = []
    for (model, opt), t in best.groupby(["model", "optimizer"], sort=True):
        for other in sorted(set(t["group"]) - {reference}, key=_group_order):
            p = _paired(t, reference, other, value)
            if p.empty and reference not in set(t["group"]):
                continue
            res = paired_test(p["a"], p["b"])
            rows.append({"model": model, "optimizer": opt, "reference": reference, "other": other, **res,
                         "datasets": ", ".join(p["dataset"])})
    return pd.DataFrame(rows)


def _group_order(g: str) -> int:
    order = ["full", "embed", "ln1", "mha", "ln2", "fc1", "fc2"]
    return order.index(g) if g in order else len(order)


def component_plasticity(plasticity: pd.DataFrame) -> pd.DataFrame:
    """Per ``(model, dataset, component)``: ``plasticity`` = mean over layers of the per-layer means."""
    if plasticity.empty:
        return pd.DataFrame(columns=["model", "dataset", "component", "plasticity"])
    p = plasticity.copy()
    if "model_label" in p:
        p["model"] = p["model_label"]
    out = p.groupby(["model", "dataset", "component"], sort=True)["mean"].mean().reset_index()
    return out.rename(columns={"mean": "plasticity"})


def plasticity_ranking(comp: pd.DataFrame) -> pd.DataFrame:
    """Per ``(model, dataset)``: measured order of the components (most plastic first), whether it equals
    the theory's MHA > FC1 > FC2 > LN2 > LN1, and the Spearman correlation with it."""
    rows = []
    theory = [THEORY_RANKING.index(c) for c in COMPONENTS]
    for (model, ds), t in comp.groupby(["model", "dataset"], sort=True):
        s = t.set_index("component")["plasticity"].reindex(list(COMPONENTS))
        if s.isna().any():
            continue
        order = [str(c) for c in s.sort_values(ascending=False).index]
        rho = float(sps.spearmanr(theory, (-s).rank().to_numpy()).statistic)
        rows.append({"model": model, "dataset": ds, "order": " > ".join(order),
                     "matches_theory": order == list(THEORY_RANKING), "spearman_theory": rho})
    return pd.DataFrame(rows, columns=["model", "dataset", "order", "matches_theory", "spearman_theory"])


def plasticity_gain_correlation(comp: pd.DataFrame, gains: pd.DataFrame) -> pd.DataFrame:
    """Spearman between component plasticity and the relative gain of finetuning that component alone.

    Rows per ``(model, optimizer, scope)`` where scope is each dataset (exact permutation p) and ``pooled``
    (mean of the within-dataset rhos, within-dataset permutation p): ``n`` points, ``rho``, ``p``
    (two-sided), ``p_min`` (the smallest p the test can give), ``n_datasets``, ``method``.
    """
    g = gains[gains["group"].isin(COMPONENTS)][["model", "optimizer", "dataset", "group", "gain"]]
    m = g.merge(comp.rename(columns={"component": "group"}), on=["model", "dataset", "group"]).dropna()
    rows = []
    for (model, opt), t in m.groupby(["model", "optimizer"], sort=True):
        scopes = [(str(ds), d) for ds, d in t.groupby("dataset", sort=True)] + [("pooled", t)]
        for scope, d in scopes:
            r = stratified_rank_test(d["plasticity"].to_numpy(), d["gain"].to_numpy(), d["dataset"].to_numpy())
            rows.append({"model": model, "optimizer": opt, "scope": scope, "n": len(d), "rho": r.statistic,
                         "p": r.p, "p_min": r.p_min, "n_datasets": d["dataset"].nunique(), "method": r.method})
    return pd.DataFrame(rows, columns=["model", "optimizer", "scope", "n", "rho", "p", "p_min", "n_datasets", "method"])
