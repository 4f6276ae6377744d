"""Checkpoint files of a run: the trained weights, and the full state needed to resume.

A run's weights are stored as the *trainable* tensors only (plus buffers), keyed by the underlying
module's ``state_dict`` names; frozen tensors are re-created from the model spec. A fingerprint of the
frozen tensors (SHA-256 of their bytes in name order) is recorded with the run and checked whenever the
weights are loaded again, so a run is never combined with a different base model.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vitplast.errors import VitplastError
from vitplast.io import atomic_write
from vitplast.models.vit import ViT


def trainable_state(vit: ViT) -> dict[str, Tensor]:
    """CPU copies of the trainable parameters and of all buffers, by ``state_dict`` name."""
    keep = {n for n, p in vit.module.named_parameters() if p.requires_grad}
    keep |= {n for n, _ in vit.module.named_buffers()}
    return {k: v.detach().cpu().clone().contiguous() for k, v in vit.module.state_dict().items() if k in keep}


def full_state(vit: ViT) -> dict[str, Tensor]:
    return {k: v.detach().cpu().clone().contiguous() for k, v in vit.module.state_dict().items()}


def load_state(vit: ViT, state: dict[str, Tensor]) -> None:
    """Copy ``state`` (a subset of the module's ``state_dict``) into the model in place."""
    own = vit.module.state_dict()
    bad = [k for k in state if k not in own or not isinstance(state[k], Tensor) or own[k].shape != state[k].shape]
    if bad:
        raise VitplastError(f"checkpoint does not fit the model (first mismatching tensor: {bad[0]})")
    with torch.no_grad():
        for k, v in state.items():
            own[k].copy_(v.to(own[k].dtype))


def frozen_fingerprint(vit: ViT) -> str:
    """SHA-256 over the names and bytes of the frozen parameters (``requires_grad`` False), name order."""
    h = hashlib.sha256()
    for name, p in sorted(vit.module.named_parameters(), key=lambda kv: kv[0]):
        if p.requires_grad:
            continue
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def resume_record(weights: dict[str, Tensor], optimizer: dict[str, Any], state: Any, device: torch.device,
                  scaler: dict[str, Any] | None = None) -> dict[str, Any]:
    """The resume state of a run (``last.pt``), alone or in a bundle: its trained tensors, optimizer (and
    gradient-scaler) state, the CPU random state and, on a CUDA device, that device's random state, and the
    counters of ``state`` (a dataclass instance)."""
    return {
        "weights": weights,
        "optimizer": optimizer,
        "scaler": scaler,
        "rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "state": vars(state).copy(),
    }


def save_tensors(path: Path, tensors: dict[str, Tensor], metadata: dict[str, str] | None = None) -> None:
    """Write a ``.safetensors`` file atomically, byte-identical for identical inputs.

    safetensors writes several metadata keys in an arbitrary order (the same weights would hash differently), so
    ``metadata`` is stored as one key, ``vitplast``, holding the JSON of the dict with sorted keys."""
    from safetensors.torch import save_file

    meta = {"vitplast": json.dumps(metadata, sort_keys=True)} if metadata else None
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def load_tensors(path: Path) -> dict[str, Tensor]:
    """The tensors of a ``.safetensors`` file; a missing, truncated or damaged file -> one-line VitplastError."""
    from safetensors.torch import load_file

    if not path.is_file():
        raise VitplastError(f"checkpoint {path} does not exist")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error type (and OSError) for damaged files
        raise damaged(path, exc) from None


def save_torch(path: Path, obj: Any) -> None:
    """``torch.save`` atomically (resume state: weights, optimizer state, random state, counters).

    ``obj`` must hold only tensors and plain Python values (dict, list, tuple, str, int, float, bool, None):
    :func:`load_torch` reads nothing else back."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_torch(path: Path) -> Any:
    """A resume state written by :func:`save_torch`, read with ``torch.load(weights_only=True)``.

    Nothing in the file is executed: only a torch zip archive is opened, and its pickle may build nothing but
    tensors and plain values. Anything else (a bare pickle, an object that names a class or function) is refused;
    a missing, truncated or damaged file too. Each case raises a one-line :class:`VitplastError` naming the file.
    """
    if not path.is_file():
        raise VitplastError(f"checkpoint {path} does not exist")
    with open(path, "rb") as fh:
        if fh.read(4) != b"PK\x03\x04":  # torch.save writes zip archives; a bare pickle is never unpickled
            raise VitplastError(f"checkpoint {path} is not a torch checkpoint archive (refused, not loaded)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols on stderr
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL [\w.]+|Unsupported operand \d+|Unsupported class [\w.]+", str(exc))
        what = found.group(0) if found else "an object that is not a tensor or plain value"
        raise VitplastError(f"checkpoint {path} holds more than tensors and plain values (refused, not loaded: "
                            f"{what})") from None
    except Exception as exc:  # truncated zip archives and pickles fail with many error types
        raise damaged(path, exc) from None


def damaged(path: Path, exc: BaseException) -> VitplastError:
    detail = " ".join(str(exc).split()).split(". ")[0][:120] or type(exc).__name__
    return VitplastError(f"checkpoint {path} is truncated or damaged ({detail})")
