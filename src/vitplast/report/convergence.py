"""Whether the finetuning runs were still improving when their budget ended (``tables/convergence.csv``,
``docs/statistics.md``).

Per ``(model, optimizer, dataset, group)`` over its finished runs (every lr and seed): ``n_runs``; ``n_at_last``,
the runs whose best validation accuracy is at their last step (``best_step == steps_done``, the steps the run did;
the configured ``steps`` where no count was recorded; the engine always evaluates after the last step); ``share``
= ``n_at_last / n_runs``; and ``n_diverged`` (a diverged run stopped early and never counts as at its last step).
A run whose best checkpoint is its last evaluation may still have been improving: where most are, the protocol
compares what each group reaches within a fixed budget, not where it levels off.
"""

from __future__ import annotations

import pandas as pd

from vitplast.report.figures import label, ordered_groups
from vitplast.report.stats import KEYS

COLUMNS = [*KEYS, "n_runs", "n_at_last", "share", "n_diverged"]


def convergence(results: pd.DataFrame) -> pd.DataFrame:
    """The table of the module docstring from a ``results.csv`` table (``status``, ``model_label``, ``optimizer``,
    ``dataset``, ``group``, ``best_step``, ``steps_done``, ``steps``, ``diverged``)."""
    if results.empty or "status" not in results or "best_step" not in results:
        return pd.DataFrame(columns=COLUMNS)
    done = results[results["status"] == "done"].copy()
    if done.empty:
        return pd.DataFrame(columns=COLUMNS)
    done["model"] = done["model_label"] if "model_label" in done else done["model"]
    steps = pd.to_numeric(done["steps"], errors="coerce")
    last = pd.to_numeric(done["steps_done"], errors="coerce").fillna(steps) if "steps_done" in done else steps
    best = pd.to_numeric(done["best_step"], errors="coerce")
    diverged = done["diverged"].astype(str).str.lower() == "true" if "diverged" in done else False
    done["at_last"] = (best == last) & ~diverged
    done["is_diverged"] = diverged
    g = done.groupby(KEYS, sort=True)
    out = pd.DataFrame({"n_runs": g.size(), "n_at_last": g["at_last"].sum().astype(int),
                        "n_diverged": g["is_diverged"].sum().astype(int)}).reset_index()
    out["share"] = out["n_at_last"] / out["n_runs"]
    return out[COLUMNS]


def sentence(table: pd.DataFrame) -> str:
    """One sentence on the table: how many runs peak at their last evaluation, what that means, and per group."""
    if table.empty:
        return "No finished finetuning run: nothing to say about convergence."
    n, k = int(table["n_runs"].sum()), int(table["n_at_last"].sum())
    text = f"In {k} of {n} finetuning runs the best validation accuracy is at the last evaluation"
    if 2 * k > n:
        text += ": the protocol compares what each group reaches in a fixed budget, not a plateau"
    else:
        text += f"; in the other {n - k} it is at an earlier one (those runs levelled off within the budget)"
    sums = table.groupby("group")[["n_at_last", "n_runs"]].sum()
    at, runs = sums["n_at_last"].to_dict(), sums["n_runs"].to_dict()
    parts = [f"{label(g)} {int(at[g])}/{int(runs[g])}" for g in ordered_groups([str(x) for x in sums.index])]
    return f"{text} (by group: {', '.join(parts)})."
