"""Load a vision transformer from any supported source and see it through named components.

Model specs (CLI ``--model`` and :func:`load_model`):

* ``micro`` and ``micro-long`` - the micro-ViT pretrained on ``mini:source``, shipped in this package (offline;
  ``micro-long`` was trained longer, into a regime closer to a pretrained ViT's, see ``docs/diagnostics.md``);
* ``timm:ARCH`` - a timm architecture, pretrained weights from the hub (``random_weights`` builds it offline);
* ``timm:ARCH@FILE`` - a timm architecture with weights from a local ``.safetensors`` (or ``.pth``) file;
* ``hf:ORG/NAME`` - a transformers ViT, DeiT, DINOv2, BEiT, CLIP or SigLIP vision model from the hub; ``hf:DIR`` or a bare ``DIR`` - a ``save_pretrained`` directory.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from vitplast.errors import VitplastError
from vitplast.models import hub
from vitplast.models import micro as _micro  # registers the micro architecture in timm
from vitplast.models.hf_adapter import HFViT, is_hf_vit, load_hf, wrap_hf
from vitplast.models.timm_adapter import TimmViT, is_timm_vit, load_timm, wrap_timm
from vitplast.models.vit import AttentionWeights, Block, DataConfig, LinearMap, ViT

__all__ = ["AttentionWeights", "Block", "DataConfig", "HFViT", "LinearMap", "TimmViT", "ViT", "as_vit", "load_model"]


def load_model(spec: str, random_weights: bool = False, seed: int = 0) -> ViT:
    """Load the model named by ``spec`` (see module docstring) in eval mode on the CPU.

    With ``random_weights`` the architecture is initialised from ``seed`` (same seed, same weights); the
    global torch RNG is left untouched.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _load(spec, random_weights)


def _load(spec: str, random_weights: bool) -> ViT:
    if spec in _micro.BUNDLED:
        checkpoint = None if random_weights else _micro.checkpoint_path(spec)
        vit = load_timm(_micro.ARCH, checkpoint=checkpoint, random_weights=True, spec=spec)
    elif spec.startswith("timm:"):
        ref = spec[len("timm:") :]
        arch, sep, path = ref.partition("@")
        if not arch:
            raise VitplastError("timm:ARCH needs an architecture name, e.g. timm:vit_base_patch16_224.orig_in21k")
        if not sep and not random_weights:
            hub.require_timm_weights(arch, spec)
        vit = load_timm(
            arch, checkpoint=Path(path).expanduser() if sep else None, random_weights=random_weights, spec=spec
        )
    elif spec.startswith("hf:"):
        ref = spec[len("hf:") :]
        if not Path(ref).expanduser().is_dir():
            if ref.startswith((".", "/", "~")) or ref.count("/") > 1:
                raise VitplastError(f"HF model directory {ref} does not exist")
            if not random_weights:
                hub.require_hf_weights(ref, spec)
        vit = load_hf(spec[len("hf:") :], random_weights=random_weights, spec=spec)
    elif Path(spec).expanduser().is_dir():
        vit = load_hf(spec, random_weights=random_weights, spec=spec)
    else:
        raise VitplastError(
            f"unknown model spec {spec!r}: use {', '.join(_micro.BUNDLED)}, timm:ARCH, timm:ARCH@FILE.safetensors, "
            "hf:ORG/NAME or hf:DIR"
        )
    vit.eval()
    return vit


def as_vit(model: ViT | nn.Module, name: str | None = None) -> ViT:
    """The :class:`ViT` view of ``model``: a ViT is returned as is; timm and HF modules are wrapped."""
    if isinstance(model, ViT):
        return model
    if is_timm_vit(model):
        return wrap_timm(model, name or f"timm:{type(model).__name__}")
    if is_hf_vit(model):
        return wrap_hf(model, name or f"hf:{type(model).__name__}")
    kids = ", ".join(n for n, _ in model.named_children())
    raise VitplastError(f"{type(model).__name__}: no transformer blocks found; top-level modules are: {kids}")
