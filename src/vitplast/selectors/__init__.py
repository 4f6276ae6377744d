"""Selectors: which trainable groups of a ViT are worth finetuning on given data (docs/selectors.md).

Every selector has the same interface, ``selector(model, data) -> Scores``: a score per selectable group
(``embed ln1 mha ln2 fc1 fc2``) and, where defined, per block. Higher = train it. Look one up by name with
:func:`get_selector` or run it with :func:`score`; :data:`REGISTRY` maps each selector to its function and
:class:`SelectorInfo` (the registry's metadata: docs/contributing.md). Importing this package does not import
torch: the names below that need it are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vitplast.lazy import lazy_getattr
from vitplast.selectors.config import RecommendConfig, default_selectors
from vitplast.selectors.registry import SelectorFn, SelectorInfo, get_selector, load_all, selector_index

if TYPE_CHECKING:
    from vitplast.selectors.base import Scores, SelectorData, score
    from vitplast.selectors.data import load_selector_data
    from vitplast.selectors.result import RecommendResult

    REGISTRY: dict[str, tuple[SelectorFn, SelectorInfo]]

#: Every selector that scores groups, in the order tables list them: plasticity first, the baselines last.
DEFAULT_SELECTORS: tuple[str, ...] = default_selectors("group")

_LAZY = {
    **dict.fromkeys(("Scores", "SelectorData", "score"), "vitplast.selectors.base"),
    "load_selector_data": "vitplast.selectors.data",
    "RecommendResult": "vitplast.selectors.result",
}
_lazy = lazy_getattr(__name__, _LAZY, globals())


def __getattr__(name: str) -> Any:
    """The names of :data:`_LAZY` on first use; ``REGISTRY``: every selector, imported, in table order."""
    return load_all() if name == "REGISTRY" else _lazy(name)


__all__ = [
    "DEFAULT_SELECTORS",
    "REGISTRY",
    "RecommendConfig",
    "RecommendResult",
    "Scores",
    "SelectorData",
    "SelectorInfo",
    "get_selector",
    "load_selector_data",
    "score",
    "selector_index",
]
