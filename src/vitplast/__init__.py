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

from vitplast.bounds import BoundsResult, check_bounds, compute_bounds
from vitplast.components import COMPONENTS, GROUPS
from vitplast.data import DataBundle, DataContext, load_data
from vitplast.errors import VitplastError
from vitplast.models import DataConfig, ViT, as_vit, load_model
from vitplast.plasticity import PlasticityResult, measure_plasticity
from vitplast.train import finetune

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
