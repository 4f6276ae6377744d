"""The optimizer of a run bundle (``docs/mini-protocol.md``, "Run bundles"): K runs' updates on stacked tensors.

Every tensor ``P`` of the bundle is ``[K, *shape]`` (member ``k``'s copy at ``P[k]``). Member ``k`` has its own
learning rate ``lr_k(s)`` (its config's schedule, :func:`vitplast.train.optim.lr_at`), weight decay and momentum;
the update of one member is the one :func:`vitplast.train.optim.make_optimizer` makes for the single run::

    AdamW (betas 0.9, 0.999, eps 1e-8, t = the member's update count):
        P <- P (1 - lr wd);  m <- m + (1 - b1)(g - m);  v <- b2 v + (1 - b2) g^2
        P <- P - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    SGD (momentum mu, no dampening):
        d <- g + wd P;  buf <- mu buf + d  (buf starts at 0, so its first value is d);  P <- P - lr buf

``wd`` is a per-member, per-tensor factor: 0 where the single run does not decay (vectors, masked tensors) and
where the member does not train the tensor at all. A member's gradient is exactly 0 on every entry it does not
train (:class:`BatchedOptimizer` gets masked gradients), so with zero state those entries never change: ``m`` and
``buf`` stay 0 and ``P`` is multiplied by exactly 1. Floating-point rounding differs from torch's fused kernels in
the last bits; the measured drift is stated in ``docs/mini-protocol.md``.

:meth:`BatchedOptimizer.member_state` / :meth:`BatchedOptimizer.load_member_state` convert one member's state
to and from the ``state_dict`` of the single run's torch optimizer, so ``last.pt`` is the same file either way and
a run interrupted in a bundle can be resumed alone (and the reverse).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from vitplast.train.config import TrainConfig
from vitplast.train.optim import make_optimizer

BETAS = (0.9, 0.999)
EPS = 1e-8


class _Columns:
    """Per-member factors as float32 ``[K, 1, ..., 1]`` tensors broadcasting against ``[K, *shape]`` tensors, each
    distinct one built (and copied to the device) once per update."""

    def __init__(self) -> None:
        self.made: dict[tuple[tuple[float, ...], int, torch.device], Tensor] = {}

    def __call__(self, values: Sequence[float], like: Tensor) -> Tensor:
        key = (tuple(values), like.ndim, like.device)
        if key not in self.made:
            flat = torch.tensor(values, dtype=torch.float32, device=like.device)
            self.made[key] = flat.view(-1, *([1] * (like.ndim - 1)))
        return self.made[key]


class BatchedOptimizer:
    """SGD or AdamW (module docstring) over stacked tensors ``params`` (name -> ``[K, *shape]`` leaf tensor)."""

    def __init__(self, params: dict[str, Tensor], cfgs: Sequence[TrainConfig], decay: dict[str, list[float]]) -> None:
        self.params, self.cfgs, self.decay = params, list(cfgs), decay
        self.adam = cfgs[0].optimizer == "adamw"
        self.state: dict[str, dict[str, Tensor]] = {
            n: ({"exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)} if self.adam
                else {"momentum_buffer": torch.zeros_like(p)})
            for n, p in params.items()
        }
        self.steps = [0] * len(self.cfgs)

    @torch.no_grad()
    def step(self, lrs: Sequence[float]) -> None:
        """One update of every member with learning rate ``lrs[k]``; gradients are the params' ``.grad``."""
        self.steps = [t + 1 for t in self.steps]
        _col = _Columns()
        for name, p in self.params.items():
            g = p.grad
            if g is None:
                continue
            wd = [lr * w for lr, w in zip(lrs, self.decay[name], strict=True)]
            st = self.state[name]
            if self.adam:
                p.mul_(_col([1.0 - x for x in wd], p))
                st["exp_avg"].lerp_(g, 1.0 - BETAS[0])
                st["exp_avg_sq"].mul_(BETAS[1]).addcmul_(g, g, value=1.0 - BETAS[1])
                bc2 = _col([(1.0 - BETAS[1] ** t) ** 0.5 for t in self.steps], p)
                denom = (st["exp_avg_sq"].sqrt() / bc2).add_(EPS)
                size = _col([lr / (1.0 - BETAS[0] ** t) for lr, t in zip(lrs, self.steps, strict=True)], p)
                p.sub_(size * (st["exp_avg"] / denom))
            else:
                d = g.add(p * _col(self.decay[name], p)) if any(self.decay[name]) else g
                buf = st["momentum_buffer"]
                buf.mul_(_col([c.momentum for c in self.cfgs], p)).add_(d)
                p.sub_(_col(lrs, p) * buf)

    def select(self, keep: Sequence[int], params: dict[str, Tensor]) -> None:
        """Keep members ``keep`` only (in that order); ``params`` are the already selected parameters."""
        idx = torch.tensor(list(keep), dtype=torch.long)
        self.params = params
        self.state = {n: {k: v[idx.to(v.device)] for k, v in st.items()} for n, st in self.state.items()}
        self.cfgs = [self.cfgs[i] for i in keep]
        self.steps = [self.steps[i] for i in keep]
        self.decay = {n: [d[i] for i in keep] for n, d in self.decay.items()}

    def _template(self, k: int, names: Sequence[str], no_decay: Sequence[str]) -> tuple[torch.optim.Optimizer, list[nn.Parameter]]:
        """The single run's torch optimizer over stand-ins for member ``k``'s trained tensors ``names``."""
        stand_ins = [nn.Parameter(self.params[n][k].detach().cpu().clone()) for n in names]
        exempt = [p for n, p in zip(names, stand_ins, strict=True) if n in set(no_decay)]
        return make_optimizer(stand_ins, self.cfgs[k], torch.device("cpu"), no_decay=exempt), stand_ins

    def member_state(self, k: int, names: Sequence[str], no_decay: Sequence[str]) -> dict[str, Any]:
        """Member ``k``'s optimizer state as the single run's ``optimizer.state_dict()`` (``names`` in the single
        run's parameter order; ``no_decay``: its masked tensors)."""
        opt, stand_ins = self._template(k, names, no_decay)
        for n, p in zip(names, stand_ins, strict=True):
            if self.steps[k] == 0:
                continue
            st = {key: v[k].detach().cpu().clone() for key, v in self.state[n].items()}
            if self.adam:
                st["step"] = torch.tensor(float(self.steps[k]), dtype=torch.float32)
            opt.state[p] = st
        return opt.state_dict()

    def load_member_state(self, k: int, names: Sequence[str], no_decay: Sequence[str], saved: dict[str, Any]) -> None:
        """Load a single run's ``optimizer.state_dict()`` into member ``k`` (inverse of :meth:`member_state`)."""
        opt, stand_ins = self._template(k, names, no_decay)
        opt.load_state_dict(saved)
        with torch.no_grad():
            for n, p in zip(names, stand_ins, strict=True):
                st = opt.state.get(p, {})
                for key, v in st.items():
                    if key == "step":
                        self.steps[k] = int(float(v))
                    else:
                        self.state[n][key][k].copy_(v)
