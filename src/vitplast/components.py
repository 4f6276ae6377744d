"""The one naming scheme for transformer components used everywhere (API, CLI, tables, files).

A pre-norm ViT block computes ``h' = h + MHA(LN1(h))`` and ``out = h' + FC2(act(FC1(LN2(h'))))``
(README, "How the estimator works"). Measured components are :data:`COMPONENTS`; trainable groups (README, "Reproducing the paper offline") add
``embed`` (patch projection, class token, position embedding) and ``head`` (final norm + classifier).
"""

from __future__ import annotations

from typing import Final, Literal

Component = Literal["ln1", "mha", "ln2", "fc1", "fc2"]
Group = Literal["embed", "ln1", "mha", "ln2", "fc1", "fc2", "head"]

COMPONENTS: Final[tuple[Component, ...]] = ("ln1", "mha", "ln2", "fc1", "fc2")
GROUPS: Final[tuple[Group, ...]] = ("embed", "ln1", "mha", "ln2", "fc1", "fc2", "head")
#: The LayerNorms' parameter-matched control group (``docs/statistics.md``): trained alone, never a component.
LN_CONTROL: Final = "ln-control"
TRAINABLE_CHOICES: Final[tuple[str, ...]] = ("full", "embed", "ln1", "mha", "ln2", "fc1", "fc2", LN_CONTROL)
#: Groups a user chooses to train or score (the ``head`` is always trained).
SELECTABLE: Final[tuple[str, ...]] = tuple(g for g in GROUPS if g != "head")
DISPLAY: Final[dict[str, str]] = {
    "ln1": "LN1",
    "mha": "MHA",
    "ln2": "LN2",
    "fc1": "FC1",
    "fc2": "FC2",
    "embed": "Embed",
    "head": "Head",
    "full": "Full",
    "probe": "Linear probe",
    "ln-control": "LN control",
}
#: Ranking claimed by the paper's theory, most plastic first (README, "Theory: bounds on plasticity").
THEORY_RANKING: Final[tuple[Component, ...]] = ("mha", "fc1", "fc2", "ln2", "ln1")
#: One colour per component, shared by every figure.
COLORS: Final[dict[str, str]] = {
    "ln1": "#1f77b4",
    "mha": "#d62728",
    "ln2": "#17becf",
    "fc1": "#ff7f0e",
    "fc2": "#2ca02c",
    "embed": "#9467bd",
    "full": "#7f7f7f",
    "probe": "#000000",
    "head": "#8c564b",
    "ln-control": "#bcbd22",
}
