"""Selectors: which trainable groups of a ViT are worth finetuning on given data (docs/selectors.md).

Every selector has the same interface, ``selector(model, data) -> Scores``: a score per selectable group
(``embed ln1 mha ln2 fc1 fc2``) and, where defined, per block. Higher = train it. Look one up by name with
:func:`get_selector` or run it with :func:`score`; :data:`REGISTRY` maps each name to its function and formula.
"""

from vitplast.recommend_config import RecommendConfig, default_selectors
from vitplast.selectors import gradients, simple
from vitplast.selectors.base import REGISTRY, Scores, SelectorData, get_selector, score
from vitplast.selectors.data import load_selector_data
from vitplast.selectors.recommend import RecommendResult, recommend

#: Every selector that scores groups, in the order tables list them: plasticity first, the baselines last.
DEFAULT_SELECTORS: tuple[str, ...] = default_selectors("group")

__all__ = [
    "DEFAULT_SELECTORS",
    "REGISTRY",
    "RecommendConfig",
    "RecommendResult",
    "Scores",
    "SelectorData",
    "get_selector",
    "gradients",
    "load_selector_data",
    "recommend",
    "score",
    "simple",
]
