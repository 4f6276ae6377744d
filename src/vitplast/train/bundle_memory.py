"""How many runs fit in one bundle (``docs/mini-protocol.md``, "Run bundles": the measured peak).

A member of a bundle holds, for every tensor any member trains (``n`` entries per member), the weights, their
gradient and the optimizer's state (AdamW: 2 slots, SGD: 1), in float32; and, during a training step, the
activations autograd keeps for the backward pass. Per member, in bytes::

    state       = 4 n (2 + slots)
    activations = 4 b T L (16 d + 3 h + 3 H T)      (b micro-batch, T tokens, L blocks, d width, h MLP width, H heads)

(the activation term counts the tensors one pre-norm block keeps: norms, q/k/v, attention logits and weights,
projections, residuals, the MLP's hidden layer and its activation, with a margin for vmap's copies). A bundle
of K members needs about ``K x (state + activations)`` beyond the shared model; :func:`members_that_fit` divides
the free memory of the device (CUDA: ``torch.cuda.mem_get_info``; CPU: ``MemAvailable``), times
:data:`SAFETY`, by it, and :func:`vitplast.train.bundle.train_bundle` trains a larger bundle as consecutive
sessions of at most that many members.
"""

from __future__ import annotations

from pathlib import Path

import torch

from vitplast.models.vit import ViT
from vitplast.train.config import TrainConfig

#: Share of the free memory a bundle may plan to use.
SAFETY = 0.7


def member_bytes(vit: ViT, cfg: TrainConfig, trained: int) -> int:
    """Estimated peak bytes of one member (module docstring); ``trained``: entries of the stacked tensors."""
    slots = 2 if cfg.optimizer == "adamw" else 1
    t = vit.seq_len()
    per_token = 16 * vit.dim + 3 * vit.mlp_dim + 3 * vit.num_heads * t
    return 4 * trained * (2 + slots) + 4 * cfg.micro_batch * t * vit.depth * per_token


def free_bytes(device: torch.device) -> int:
    """Free memory of ``device``: CUDA's free memory, or the host's ``MemAvailable`` (Linux; else 8 GiB)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 << 30


def members_that_fit(vit: ViT, cfg: TrainConfig, trained: int, device: torch.device) -> int:
    """The largest bundle (>= 1) whose estimated peak stays within :data:`SAFETY` of the free memory."""
    return max(1, int(SAFETY * free_bytes(device)) // max(1, member_bytes(vit, cfg, trained)))
