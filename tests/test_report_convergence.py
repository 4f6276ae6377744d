"""``tables/convergence.csv``: runs whose best validation accuracy is at their last step, counted by hand."""

from __future__ import annotations

import math

import pandas as pd

from vitplast.report.convergence import COLUMNS, convergence, sentence


def results() -> pd.DataFrame:
    """Two groups on two targets: MHA on t0 peaks early once; a diverged LN1 run stops at step 7 with its best
    there recorded; an LN1 run whose best is at step 150 of 150 but without a ``steps_done``; a run not done."""
    row = {"status": "done", "model_label": "m", "optimizer": "adamw", "steps": 150, "diverged": False}
    rows = [
        row | {"dataset": "t0", "group": "mha", "best_step": 150, "steps_done": 150},
        row | {"dataset": "t0", "group": "mha", "best_step": 100, "steps_done": 150},
        row | {"dataset": "t0", "group": "mha", "best_step": 150, "steps_done": 150},
        row | {"dataset": "t0", "group": "ln1", "best_step": 7, "steps_done": 7, "diverged": True},
        row | {"dataset": "t0", "group": "ln1", "best_step": 150, "steps_done": math.nan},
        row | {"dataset": "t1", "group": "mha", "best_step": 50, "steps_done": 150},
        row | {"dataset": "t1", "group": "mha", "best_step": math.nan, "steps_done": 150, "status": "pending"},
    ]
    return pd.DataFrame(rows)


def test_convergence_counts_by_hand() -> None:
    table = convergence(results()).set_index(["dataset", "group"])
    assert list(convergence(results()).columns) == COLUMNS
    assert table.loc[("t0", "mha"), ["n_runs", "n_at_last", "n_diverged"]].tolist() == [3, 2, 0]
    assert table.loc[("t0", "ln1"), ["n_runs", "n_at_last", "n_diverged"]].tolist() == [2, 1, 1]  # diverged: never
    assert table.loc[("t1", "mha"), ["n_runs", "n_at_last"]].tolist() == [1, 0]  # the pending run is not counted
    assert table.loc[("t0", "mha"), "share"] == 2 / 3
    assert convergence(results().iloc[:0]).empty and convergence(pd.DataFrame()).empty


def test_the_sentence_says_what_the_counts_mean() -> None:
    text = sentence(convergence(results()))
    assert text.startswith("In 3 of 6 finetuning runs the best validation accuracy is at the last evaluation")
    assert "in the other 3 it is at an earlier one" in text and text.endswith("(by group: LN1 1/2, MHA 2/4).")
    budget = results()
    budget["best_step"] = 150
    assert "fixed budget, not a plateau" in sentence(convergence(budget))
    assert sentence(convergence(pd.DataFrame())).startswith("No finished finetuning run")
