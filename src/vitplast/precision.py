"""Numeric precision of the model's forward and backward passes (``--precision``), see ``docs/precision.md``.

``auto``  bf16 autocast with TF32 matmuls on a CUDA device that supports bf16; fp32 everywhere else (CPU).
``fp32``  float32 everywhere (TF32 off).
``tf32``  float32 tensors, TF32 tensor-core matmuls and convolutions on CUDA (on CPU: identical to fp32).
``bf16``  ``torch.autocast`` to bfloat16 (CPU or a CUDA device with bf16), TF32 for the float32 matmuls left.
``fp16``  ``torch.autocast`` to float16 with a gradient scaler (CUDA only).

Only the forward pass is autocast: master weights, optimizer state, the loss, gradient norms and clipping stay
float32, and statistics (plasticity, scores) are accumulated in float64 / float32 as before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vitplast.errors import VitplastError

if TYPE_CHECKING:  # torch is imported where used, so that option declarations stay light (fast --help)
    import torch

PRECISIONS: tuple[str, ...] = ("auto", "fp32", "tf32", "bf16", "fp16")
PRECISION_HELP = (
    "auto (bf16 autocast + TF32 on a CUDA GPU with bf16, fp32 on CPU), fp32, tf32 (CUDA matmuls), "
    "bf16 (autocast), fp16 (autocast + gradient scaler, CUDA only)"
)


@dataclass(frozen=True)
class Precision:
    """A precision resolved for one device: ``name`` is never ``auto``; ``dtype`` the autocast type (None: off)."""

    name: str
    device_type: str
    dtype: torch.dtype | None
    tf32: bool

    @property
    def scaled(self) -> bool:
        """Whether the loss needs a gradient scaler (fp16: small gradients underflow)."""
        return self.name == "fp16"

    @contextlib.contextmanager
    def forward(self) -> Iterator[None]:
        """Context of a forward pass: autocast to ``dtype`` (if any) and TF32 matmuls (if on); restores both."""
        import torch

        matmul = torch.backends.cuda.matmul.allow_tf32
        conv = torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = self.tf32
        try:
            if self.dtype is None:
                yield
            else:
                with torch.autocast(self.device_type, dtype=self.dtype):
                    yield
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, conv


def _bf16_ok(device: torch.device) -> bool:
    import torch

    return device.type == "cpu" or (device.type == "cuda" and torch.cuda.is_bf16_supported())


def resolve_precision(name: str, device: torch.device) -> Precision:
    """The :class:`Precision` ``name`` means on ``device``; an impossible combination is a
    :class:`~vitplast.errors.VitplastError` (fp16 off CUDA, bf16 on a CUDA device without bf16)."""
    import torch

    if name not in PRECISIONS:
        raise VitplastError(f"--precision must be one of {', '.join(PRECISIONS)}, got {name!r}")
    cuda = device.type == "cuda"
    if name == "auto":
        name = "bf16" if cuda and _bf16_ok(device) else "fp32"
    if name == "fp16" and not cuda:
        raise VitplastError(f"--precision fp16 needs a CUDA device (got {device}); use bf16 or fp32")
    if name == "bf16" and not _bf16_ok(device):
        raise VitplastError(f"--precision bf16: device {device} does not support bfloat16; use fp16 or fp32")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(name)
    return Precision(name, device.type, dtype, tf32=cuda and name != "fp32")
