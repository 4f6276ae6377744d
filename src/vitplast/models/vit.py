"""Library-neutral view of a pre-norm vision transformer.

Adapters (:mod:`vitplast.models.timm_adapter`, :mod:`vitplast.models.hf_adapter`) build a :class:`ViT`
from a timm or Hugging Face model. Everything else in vitplast works on this view only and never on a
library's module names. The view holds references to the library's own modules, so it shares their
parameters: training the underlying model changes what the view computes.

A block computes (SPEC section 1.1)::

    h'  = h + mha(ln1(h))
    out = h' + fc2(act(fc1(ln2(h'))))
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from vitplast.components import COMPONENTS, GROUPS


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


@dataclass
class Block:
    """One pre-norm transformer block as named components.

    ``mha`` maps ``[B, n, d] -> [B, n, d]``: the attention sub-layer with its output projection, without
    the LayerNorm in front and without the residual. ``fc1``/``fc2`` are the FFN linear layers and
    ``act`` the activation between them. ``attention()`` returns the attention projections.
    ``params`` lists the parameters of each component, for training groups.
    """

    ln1: nn.LayerNorm
    mha: Callable[[Tensor], Tensor]
    ln2: nn.LayerNorm
    fc1: nn.Linear
    act: Callable[[Tensor], Tensor]
    fc2: nn.Linear
    attention: Callable[[], AttentionWeights]
    params: dict[str, list[nn.Parameter]] = field(default_factory=dict)

    def forward(self, h: Tensor) -> Tensor:
        """The block's output, computed from its named components."""
        h = h + self.mha(self.ln1(h))
        return h + self.fc2(self.act(self.fc1(self.ln2(h))))


class ViT:
    """A vision transformer seen through named components.

    Attributes:
        module: the underlying library model (``nn.Module``), trained and moved as usual.
        blocks: the transformer blocks, input side first.
        data_config: the preprocessing the model expects (from its own config).
        name: the spec it was loaded from.
        library: ``"timm"`` or ``"hf"``.
    """

    def __init__(
        self,
        module: nn.Module,
        blocks: list[Block],
        embed: Callable[[Tensor], Tensor],
        final_norm: Callable[[Tensor], Tensor],
        classify: Callable[[Tensor], Tensor],
        reset_head: Callable[[int], None],
        group_params: Callable[[], dict[str, list[nn.Parameter]]],
        data_config: DataConfig,
        name: str,
        library: str,
        num_classes: int,
        pre_logits: Callable[[Tensor], Tensor] | None = None,
        classifier: Callable[[], nn.Linear] | None = None,
    ) -> None:
        self.module = module
        self.blocks = blocks
        self._embed = embed
        self._final_norm = final_norm
        self._classify = classify
        self._reset_head = reset_head
        self._group_params = group_params
        self.data_config = data_config
        self.name = name
        self.library = library
        self.num_classes = num_classes
        self._pre_logits = pre_logits
        self._classifier = classifier

    # --- shape -------------------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        return len(self.blocks)

    @property
    def dim(self) -> int:
        return int(self.blocks[0].fc1.in_features)

    @property
    def mlp_dim(self) -> int:
        return int(self.blocks[0].fc1.out_features)

    @property
    def num_heads(self) -> int:
        return self.blocks[0].attention().num_heads

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    def seq_len(self) -> int:
        """Number of tokens the embedding stage produces for one image."""
        size = self.data_config.input_size
        with torch.no_grad():
            x = torch.zeros(1, 3, size, size, device=self.device)
            return int(self.embed(x).shape[1])

    # --- forward pieces ----------------------------------------------------------------------------
    def embed(self, x: Tensor) -> Tensor:
        """E(x): patch projection, class token, position embedding and any pre-norm -> ``[B, n, d]``."""
        return self._embed(x)

    def hidden_states(self, x: Tensor) -> Iterator[Tensor]:
        """Yield the embedded sequence, then the output of every block in turn."""
        h = self.embed(x)
        yield h
        for block in self.blocks:
            h = block.forward(h)
            yield h

    def last_block_output(self, x: Tensor) -> Tensor:
        """Output of the last block before the final norm, ``[B, n, d]``."""
        h = self.embed(x)
        for block in self.blocks:
            h = block.forward(h)
        return h

    def features(self, x: Tensor) -> Tensor:
        """Linear-probe features (SPEC section 3): mean over tokens of the last block's output."""
        return self.last_block_output(x).mean(dim=1)

    def logits(self, x: Tensor) -> Tensor:
        """Class scores of the model's own forward pass (final norm, pooling and classifier)."""
        return self._classify(x)

    def __call__(self, x: Tensor) -> Tensor:
        return self.logits(x)

    def final_norm(self, h: Tensor) -> Tensor:
        return self._final_norm(h)

    def pre_logits(self, x: Tensor) -> Tensor:
        """The classifier's input ``[B, d]`` (final norm and the model's own pooling): logits = classifier(this)."""
        if self._pre_logits is None:
            raise NotImplementedError(f"{self.library} adapter has no pre_logits")
        return self._pre_logits(x)

    @property
    def classifier(self) -> nn.Linear:
        """The current classification layer."""
        if self._classifier is None:
            raise NotImplementedError(f"{self.library} adapter exposes no classifier")
        return self._classifier()

    # --- training ----------------------------------------------------------------------------------
    def reset_head(self, num_classes: int) -> None:
        """Replace the classifier by a freshly initialised one with ``num_classes`` outputs."""
        self._reset_head(num_classes)
        self.num_classes = num_classes

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters of each trainable group (``embed ln1 mha ln2 fc1 fc2 head``).

        Component groups gather that component across all blocks. The groups are disjoint and together
        cover every parameter of the model.
        """
        groups = self._group_params()
        missing = [g for g in GROUPS if g not in groups]
        if missing:  # pragma: no cover - adapter contract
            raise RuntimeError(f"adapter did not provide groups {missing}")
        return groups

    def component_params(self, component: str) -> list[nn.Parameter]:
        if component not in COMPONENTS:
            raise KeyError(component)
        return [p for b in self.blocks for p in b.params[component]]

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
            f"ViT(name={self.name!r}, library={self.library}, depth={self.depth}, dim={self.dim}, "
            f"heads={self.num_heads}, mlp_dim={self.mlp_dim}, input={self.data_config.input_size}px)"
        )


def first_output(fn: Callable[..., Any]) -> Callable[[Tensor], Tensor]:
    """Wrap a module whose forward may return a tuple so that it returns the first tensor."""

    def call(x: Tensor) -> Tensor:
        out = fn(x)
        return out[0] if isinstance(out, tuple | list) else out

    return call
