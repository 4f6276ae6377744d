"""Loss landscapes of component groups along their own SGD trajectories (``docs/landscape.md``).

:func:`compute_landscape` returns a :class:`LandscapeResult`; :func:`run_landscape` also writes
``landscape.csv``, ``trajectory.csv``, ``landscape.json`` and ``landscape.png``; :func:`plot_landscape` draws the
figure from a result on demand.
"""

from vitplast.landscape.geometry import Directions, grid_axes, loss_surface, pca_directions, project
from vitplast.landscape.plot import plot_landscape
from vitplast.landscape.run import (
    GroupLandscape,
    LandscapeConfig,
    LandscapeResult,
    compute_landscape,
    group_landscape,
    run_landscape,
)

__all__ = [
    "Directions",
    "GroupLandscape",
    "LandscapeConfig",
    "LandscapeResult",
    "compute_landscape",
    "grid_axes",
    "group_landscape",
    "loss_surface",
    "pca_directions",
    "plot_landscape",
    "project",
    "run_landscape",
]
