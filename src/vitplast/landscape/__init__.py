"""Loss landscapes of component groups along their own SGD trajectories (``docs/landscape.md``).

:func:`compute_landscape` returns a :class:`LandscapeResult` (it draws nothing); the result's ``save(out)``
writes ``landscape.csv``, ``trajectory.csv``, ``landscape.json`` and ``landscape.png``; :func:`plot_landscape`
draws the figure from a result on demand. The config is imported eagerly (it is torch-free, so the command line reads its
defaults quickly); everything that needs torch is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vitplast.landscape.config import LandscapeConfig
from vitplast.lazy import lazy_getattr

if TYPE_CHECKING:
    from vitplast.landscape.geometry import Directions, grid_axes, loss_surface, pca_directions, project
    from vitplast.landscape.result import GroupLandscape, LandscapeResult, plot_landscape
    from vitplast.landscape.run import compute_landscape, group_landscape

_LAZY = {
    **dict.fromkeys(("Directions", "grid_axes", "loss_surface", "pca_directions", "project"),
                    "vitplast.landscape.geometry"),
    **dict.fromkeys(("GroupLandscape", "LandscapeResult", "plot_landscape"), "vitplast.landscape.result"),
    **dict.fromkeys(("compute_landscape", "group_landscape"), "vitplast.landscape.run"),
}

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
]

__getattr__ = lazy_getattr(__name__, _LAZY, globals())
