"""vitplast: measure, bound and exploit the plasticity of vision-transformer components.

The pipeline a user walks, one module each:

1. :func:`load_model` (``vitplast.models``): a timm / HF / bundled ViT seen through named components
   ``ln1 mha ln2 fc1 fc2`` (plus ``embed`` and ``head`` as trainable groups);
2. :func:`load_data` (``vitplast.data``): any data spec (``mini:digits``, ``folder:PATH``, ``cifar10`` ...);
3. :func:`measure_plasticity` (``vitplast.plasticity``): P(f) = E[||f(X) - f(Y)||_F / ||X - Y||_F];
4. ``vitplast.bounds``: upper bounds B(f) >= P(f);
5. ``vitplast.train``: component-wise finetuning, linear probe, evaluation;
6. ``vitplast.sweep``: grids of runs on Ray and the report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vitplast.lazy import lazy_getattr

if TYPE_CHECKING:
    from vitplast.bounds import BoundsResult, check_bounds, compute_bounds
    from vitplast.components import COMPONENTS, GROUPS
    from vitplast.data import DataBundle, DataContext, load_data
    from vitplast.errors import VitplastError
    from vitplast.models import DataConfig, ViT, as_vit, load_model
    from vitplast.plasticity import PlasticityResult, measure_plasticity
    from vitplast.train import finetune

# Public names and the module that defines each: imported on first use, so that ``import vitplast`` (and the
# command line's help and option errors) do not pay for torch, timm, pandas or matplotlib.
_LAZY = {
    "BoundsResult": "vitplast.bounds",
    "check_bounds": "vitplast.bounds",
    "compute_bounds": "vitplast.bounds",
    "COMPONENTS": "vitplast.components",
    "GROUPS": "vitplast.components",
    "DataBundle": "vitplast.data",
    "DataContext": "vitplast.data",
    "load_data": "vitplast.data",
    "VitplastError": "vitplast.errors",
    "DataConfig": "vitplast.models",
    "ViT": "vitplast.models",
    "as_vit": "vitplast.models",
    "load_model": "vitplast.models",
    "PlasticityResult": "vitplast.plasticity",
    "measure_plasticity": "vitplast.plasticity",
    "finetune": "vitplast.train",
}


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__version__ = "0.1.0"
__all__ = [
    "COMPONENTS",
    "GROUPS",
    "BoundsResult",
    "DataBundle",
    "DataConfig",
    "DataContext",
    "PlasticityResult",
    "ViT",
    "VitplastError",
    "__version__",
    "as_vit",
    "check_bounds",
    "compute_bounds",
    "finetune",
    "load_data",
    "load_model",
    "measure_plasticity",
]
