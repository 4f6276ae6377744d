"""The lr pilot's rule (vitplast.suites.lr_pilot), against a naive simulation of the stages."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vitplast.suites.lr_pilot import ladder_step, pilot_state


def test_the_ladder_steps_by_half_decades_both_ways() -> None:
    up = [1e-4]
    for _ in range(5):
        up.append(ladder_step(up[-1], up=True))
    assert up == [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2]
    assert [ladder_step(x, up=False) for x in up[1:]] == up[:-1]
    for bad in (2e-3, 0.0, -1e-3, math.inf):
        with pytest.raises(ValueError):
            ladder_step(bad, up=True)


def _simulate(grid: list[float], curve, max_lrs: int) -> tuple[list[float], float, bool]:
    """The design run by hand: run every lr asked for, then ask again, until a choice is made."""
    val: dict[float, float | None] = {}
    while True:
        st = pilot_state(grid, val, max_lrs)
        if st.chosen is not None:
            return list(st.lrs), st.chosen, st.on_edge
        for lr in st.lrs:
            val.setdefault(lr, curve(lr))


def test_an_interior_optimum_is_found_by_widening() -> None:
    # a unimodal curve peaking at 3e-2: the grid 1e-4..1e-3 widens upwards until the peak is interior
    curve = lambda lr: -abs(math.log10(lr) - math.log10(3e-2))  # noqa: E731
    lrs, chosen, edge = _simulate([1e-4, 3e-4, 1e-3], curve, max_lrs=8)
    assert chosen == 3e-2 and not edge and lrs == [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]
    lrs, chosen, edge = _simulate([1e-1, 3e-1, 1.0], curve, max_lrs=8)  # and downwards
    assert chosen == 3e-2 and not edge and lrs[:3] == [1e-2, 3e-2, 1e-1]


def test_the_cap_keeps_an_edge_choice_and_says_so() -> None:
    lrs, chosen, edge = _simulate([1e-4, 3e-4, 1e-3], lambda lr: lr, max_lrs=5)  # always better higher
    assert lrs == [1e-4, 3e-4, 1e-3, 3e-3, 1e-2] and chosen == 1e-2 and edge


def test_diverged_runs_never_win_and_all_diverged_widens_down() -> None:
    st = pilot_state([1e-3, 3e-3, 1e-2], {1e-3: 0.5, 3e-3: 0.6, 1e-2: None}, max_lrs=5)
    assert st.chosen == 3e-3
    st = pilot_state([1e-3, 3e-3], {1e-3: math.nan, 3e-3: None}, max_lrs=5)
    assert st.chosen is None and st.lrs == (3e-4, 1e-3, 3e-3)


def test_ties_choose_the_smaller_lr_and_unfinished_runs_block_the_choice() -> None:
    st = pilot_state([1e-3, 3e-3, 1e-2], {1e-3: 0.4, 3e-3: 0.7, 1e-2: 0.7}, max_lrs=3)
    assert st.chosen == 3e-3 and not st.on_edge
    assert pilot_state([1e-3, 3e-3, 1e-2], {1e-3: 0.4}, max_lrs=5).chosen is None


def test_the_choice_is_the_argmax_of_a_random_curve_within_the_lrs_tried() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        table = {float(f"{m * 10.0**k:.12g}"): float(rng.random()) for k in range(-6, 1) for m in (1, 3)}
        lrs, chosen, edge = _simulate([1e-3, 3e-3, 1e-2], table.__getitem__, max_lrs=6)
        assert chosen == max(lrs, key=lambda lr: (table[lr], -lr))
        assert edge == (chosen in (lrs[0], lrs[-1]))
        assert len(lrs) <= 6 and (not edge or len(lrs) == 6)  # an edge choice only once the cap stops widening
