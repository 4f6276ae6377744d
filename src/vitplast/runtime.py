"""Where a run executes: device and data-loader worker count."""

from __future__ import annotations

import os

import torch

from vitplast.configs import check_device
from vitplast.errors import VitplastError


def resolve_device(name: str | None, label: str = "--device") -> torch.device:
    """The device every command runs on: ``auto``/``None`` -> CUDA when available, else CPU.

    The one place a device name becomes a device: the name is parsed by :func:`vitplast.configs.check_device`
    (an empty or unknown name is refused), and a device this machine lacks (``cuda`` without CUDA, a CUDA
    index past the last GPU, ``mps`` without Apple's MPS backend) is a one-line :class:`VitplastError`.
    """
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    check_device(label, name)
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise VitplastError(f"{label} {name!r}: CUDA is not available on this machine (use --device cpu)")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise VitplastError(f"{label} {name!r} does not exist ({torch.cuda.device_count()} CUDA devices)")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise VitplastError(f"{label} {name!r}: MPS (Apple GPU) is not available on this machine (use --device cpu)")
    return dev


def resolve_workers(workers: int | None, device: torch.device) -> int:
    """Explicit count, or 0 on CPU (the model competes for the same cores) and, on an accelerator, one per
    CPU core available to this process beyond the first, at most 8."""
    if workers is not None:
        if workers < 0:
            raise VitplastError(f"--workers must be >= 0, got {workers}")
        return workers
    if device.type == "cpu":
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(8, cores - 1))


def describe_device(device: torch.device) -> str:
    """Human-readable device name for model cards and results."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA)"
    import platform

    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def check_compile(device: torch.device) -> None:
    """Raise :class:`VitplastError` when ``torch.compile`` cannot work here (``--compile``): dynamo unsupported
    on this Python/platform, no C++ compiler for CPU code generation, or a device inductor does not target."""
    import shutil

    import torch._dynamo

    if not torch._dynamo.is_dynamo_supported():
        raise VitplastError("--compile: torch.compile is not supported on this Python/platform; run without it")
    if device.type == "cpu" and not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        raise VitplastError("--compile on CPU needs a C++ compiler (c++, g++ or clang++ on PATH); run without it")
    if device.type not in ("cpu", "cuda"):
        raise VitplastError(f"--compile is not supported on device {device}; run without it")
