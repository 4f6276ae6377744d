"""Library-neutral view of a pre-norm vision transformer.

Adapters (:mod:`vitplast.models.timm_adapter`, :mod:`vitplast.models.hf_adapter`) build a :class:`ViT`
from a timm or Hugging Face model. Everything else in vitplast works on this view only and never on a
library's module names. The view holds references to the library's own modules, so it shares their
parameters: training the underlying model changes what the view computes.

A block computes (``docs/model-families.md`` defines every component for every supported family)::

    h'  = h + mha(ln1(h))
    out = h' + fc2(act(fc1(ln2(h'))))

``mha`` and ``fc2`` are whole residual branches: a LayerScale ``diag(s)`` of the block belongs to them
(``mha = s1 * attention``, ``fc2 = s2 * (W2 g + b2)``). For a gated MLP ``fc1`` is the stacked value and gate
projection (width ``2 h``) and ``act`` the gate (``[u_v, u_g] -> u_v * act(u_g)``, width ``h``).

Each library adapter subclasses :class:`ViT` (:class:`~vitplast.models.timm_adapter.TimmViT`,
:class:`~vitplast.models.hf_adapter.HFViT`) and parses each supported block type into a :class:`Block` in
one place; a block the adapter cannot compute exactly is refused when the model is loaded.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vitplast.components import COMPONENTS, GROUPS
from vitplast.errors import VitplastError, warn


@dataclass(frozen=True)
class DataConfig:
    """Preprocessing a model expects: RGB input of ``input_size`` px normalised by ``mean``/``std``.

    Eval images are resized so that the centre crop of ``input_size`` keeps ``crop_pct`` of the short side.
    """

    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_pct: float = 0.875
    interpolation: str = "bicubic"

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_size": self.input_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "crop_pct": self.crop_pct,
            "interpolation": self.interpolation,
        }


@dataclass(frozen=True)
class AttentionWeights:
    """Projection weights of one multi-head attention layer, in ``nn.Linear`` layout ``[out, in]``.

    ``q``/``k``/``v`` are ``[H * d_h, d]``: rows ``h*d_h:(h+1)*d_h`` produce head ``h``.
    ``o`` is ``[d, H * d_h]``: columns ``h*d_h:(h+1)*d_h`` consume head ``h``.
    """

    q: Tensor
    k: Tensor
    v: Tensor
    o: Tensor
    q_bias: Tensor | None
    k_bias: Tensor | None
    v_bias: Tensor | None
    o_bias: Tensor | None
    num_heads: int

    @property
    def head_dim(self) -> int:
        return self.q.shape[0] // self.num_heads

    def head(self, h: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(W_Q^h, W_K^h, W_V^h, W_O^h)``: the rows of Q/K/V and the columns of O that belong to head h."""
        s = slice(h * self.head_dim, (h + 1) * self.head_dim)
        return self.q[s], self.k[s], self.v[s], self.o[:, s]


class LinearMap(nn.Module):
    """``x -> s * (x W^T + b)``: one or more ``nn.Linear`` with outputs concatenated, times an optional scale.

    ``weight``/``bias`` are the effective ``[out, in]`` matrix ``diag(s) [W_1; W_2; ...]`` and bias, computed
    from the library's parameters on access (so the map follows training). Used for FC1 (a gated MLP stacks
    its value and gate projections) and FC2 (with the block's LayerScale ``s``).
    """

    def __init__(self, parts: Sequence[nn.Linear], scale: Callable[[], Tensor | None] | None = None) -> None:
        super().__init__()
        self.parts = nn.ModuleList(parts)  # registered: parameters() lists the library's own tensors
        self._linears: list[nn.Linear] = list(parts)
        self._scale = scale

    @property
    def scale(self) -> Tensor | None:
        return None if self._scale is None else self._scale()

    @property
    def in_features(self) -> int:
        return int(self._linears[0].in_features)

    @property
    def out_features(self) -> int:
        return sum(int(p.out_features) for p in self._linears)

    @property
    def weight(self) -> Tensor:
        w: Tensor = self._linears[0].weight if len(self._linears) == 1 else torch.cat([p.weight for p in self._linears])
        s = self.scale
        return w if s is None else s.unsqueeze(1) * w

    @property
    def bias(self) -> Tensor | None:
        if all(p.bias is None for p in self._linears):
            return None
        b = torch.cat([p.bias if p.bias is not None else p.weight.new_zeros(p.out_features) for p in self._linears])
        s = self.scale
        return b if s is None else s * b

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)


@dataclass
class Block:
    """One pre-norm transformer block as named components (definitions: ``docs/model-families.md``).

    ``mha`` maps ``[B, n, d] -> [B, n, d]``: the attention sub-layer with its output projection and its
    LayerScale, without the LayerNorm in front and without the residual. ``fc1``/``fc2`` are the FFN linear
    maps (``fc2`` with its LayerScale) and ``act`` everything between them (the gate of a gated MLP, an
    MLP-internal norm). ``attention()`` returns the attention projections (W_O times the LayerScale).
    ``mha_unbounded`` names what puts the attention outside the softmax-attention bound's theory
    (qk-norm, rotary or relative position terms), ``None`` when the bound applies.
    ``params`` lists the parameters of each component, for training groups.
    """

    ln1: nn.LayerNorm
    mha: Callable[[Tensor], Tensor]
    ln2: nn.LayerNorm
    fc1: LinearMap
    act: Callable[[Tensor], Tensor]
    fc2: LinearMap
    attention: Callable[[], AttentionWeights]
    params: dict[str, list[nn.Parameter]] = field(default_factory=dict)
    mha_unbounded: str | None = None

    def forward(self, h: Tensor) -> Tensor:
        """The block's output, computed from its named components."""
        h = h + self.mha(self.ln1(h))
        return h + self.fc2(self.act(self.fc1(self.ln2(h))))


class ViT(ABC):
    """A vision transformer seen through named components; one subclass per model library.

    Attributes:
        module: the underlying library model (``nn.Module``), trained and moved as usual.
        blocks: the transformer blocks, input side first.
        data_config: the preprocessing the model expects (from its own config).
        name: the spec it was loaded from.
        library: ``"timm"`` or ``"hf"``.
        notes: what the adapter changed about the model's head (e.g. a classifier added to a bare backbone).

    A subclass implements the embedding ``embed``, the final norm, ``pre_logits``, ``classifier``,
    ``reset_head`` and ``embed_params``; :meth:`param_groups` derives the groups from them and the blocks.
    """

    library: str = ""

    def __init__(
        self, module: nn.Module, blocks: list[Block], data_config: DataConfig, name: str, num_classes: int
    ) -> None:
        if not blocks:
            raise VitplastError(f"{name}: the model has zero transformer blocks")
        self.module = module
        self.blocks = blocks
        self.data_config = data_config
        self.name = name
        self.num_classes = num_classes
        self.notes: list[str] = []

    def note(self, message: str) -> None:
        """Tell the user how the adapter changed the model's head: recorded in ``notes``, printed as one
        ``warning: ...`` line on stderr."""
        self.notes.append(message)
        warn(message)

    # --- shape -------------------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        return len(self.blocks)

    @property
    def dim(self) -> int:
        return int(self.blocks[0].fc1.in_features)

    @property
    def mlp_dim(self) -> int:
        """The FFN hidden width h, FC2's input width (a gated MLP's FC1 has ``2 h`` outputs)."""
        return int(self.blocks[0].fc2.in_features)

    @property
    def num_heads(self) -> int:
        return self.blocks[0].attention().num_heads

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    def seq_len(self) -> int:
        """Number of tokens the embedding stage produces for one image (prefix tokens included)."""
        size = self.data_config.input_size
        with torch.no_grad():
            x = torch.zeros(1, 3, size, size, device=self.device)
            return int(self.embed(x).shape[1])

    # --- forward pieces (library-specific) -----------------------------------------------------------
    @abstractmethod
    def embed(self, x: Tensor) -> Tensor:
        """E(x): patch projection, prefix tokens, position embedding and any pre-norm -> ``[B, n, d]``."""

    @abstractmethod
    def logits(self, x: Tensor) -> Tensor:
        """Class scores of the model's own forward pass (final norm, pooling and classifier)."""

    @abstractmethod
    def pre_logits(self, x: Tensor) -> Tensor:
        """The classifier's input ``[B, d']`` (final norm and the model's own pooling).

        A distilled DeiT (class token ``c``, distillation token ``t``, one head on each) predicts
        ``(head(c) + head_dist(t)) / 2`` in eval mode; its ``pre_logits`` is ``(c + t) / 2``, so that
        ``logits = classifier(pre_logits)`` once both heads are the same layer (after :meth:`reset_head`).
        """

    @property
    @abstractmethod
    def classifier(self) -> nn.Linear:
        """The current classification layer (a distilled DeiT: its class-token head)."""

    @abstractmethod
    def _reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier by a freshly initialised one with ``num_classes`` outputs."""

    @abstractmethod
    def embed_params(self) -> list[nn.Parameter]:
        """Parameters of the embedding stage: patch projection, class/distillation/register tokens,
        absolute position embedding and any norm before the first block."""

    # --- library-neutral -----------------------------------------------------------------------------
    def last_block_output(self, x: Tensor) -> Tensor:
        """Output of the last block before the final norm, ``[B, n, d]``."""
        h = self.embed(x)
        for block in self.blocks:
            h = block.forward(h)
        return h

    def features(self, x: Tensor) -> Tensor:
        """Linear-probe features (README, "Reproducing the paper offline"): mean over tokens of the last block's output."""
        return self.last_block_output(x).mean(dim=1)

    def __call__(self, x: Tensor) -> Tensor:
        return self.logits(x)

    def reset_head(self, num_classes: int) -> None:
        """Replace the classifier by a freshly initialised one with ``num_classes`` outputs.

        Afterwards ``logits(x) == classifier(pre_logits(x))`` on every family (a model with a class and a
        distillation head gets one new layer used by both, ``docs/model-families.md``).
        """
        self._reset_classifier(num_classes)
        self.num_classes = num_classes

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters of each trainable group (``embed ln1 mha ln2 fc1 fc2 head``).

        Component groups gather that component across all blocks, ``embed`` is :meth:`embed_params` and
        ``head`` every other parameter (final norm, pooling, classifier). The groups are disjoint and
        together cover every parameter of the model.
        """
        groups: dict[str, list[nn.Parameter]] = {c: [] for c in GROUPS}
        owner: dict[int, str] = {}

        def claim(group: str, params: Sequence[nn.Parameter]) -> None:
            for p in params:
                if id(p) in owner:
                    if owner[id(p)] != group:  # pragma: no cover - adapter contract
                        raise RuntimeError(f"parameter {tuple(p.shape)} is in groups {owner[id(p)]} and {group}")
                    continue
                owner[id(p)] = group
                groups[group].append(p)

        for comp in COMPONENTS:
            claim(comp, [p for b in self.blocks for p in b.params[comp]])
        claim("embed", self.embed_params())
        claim("head", [p for p in self.module.parameters() if id(p) not in owner])
        return groups

    def prefer_batchable_kernels(self) -> None:
        """Compute attention with kernels that ``torch.func.vmap`` batches (run bundles, ``docs/mini-protocol.md``);
        the result is the same up to floating-point rounding. A no-op where the library's kernels already batch."""
        return None

    def to(self, device: torch.device | str) -> ViT:
        self.module.to(device)
        return self

    def eval(self) -> ViT:
        self.module.eval()
        return self

    def train(self, mode: bool = True) -> ViT:
        self.module.train(mode)
        return self

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, depth={self.depth}, dim={self.dim}, "
            f"heads={self.num_heads}, mlp_dim={self.mlp_dim}, input={self.data_config.input_size}px)"
        )


def scaled(fn: Callable[[Tensor], Tensor], scale: Callable[[], Tensor | None]) -> Callable[[Tensor], Tensor]:
    """``x -> scale() * fn(x)`` (LayerScale on a residual branch; ``None`` = no scale)."""

    def call(x: Tensor) -> Tensor:
        s = scale()
        out = fn(x)
        return out if s is None else s * out

    return call
