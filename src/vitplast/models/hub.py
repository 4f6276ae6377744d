"""Weights from the Hugging Face hub: say at once, in one line, when they cannot be downloaded.

Before a hub download the model loaders call :func:`require_timm_weights` or :func:`require_hf_weights`. When the
weights are not in the local cache and the hub cannot be used (offline mode, ``HF_HUB_OFFLINE`` or
``TRANSFORMERS_OFFLINE`` set; or no connection to the hub's host within :data:`CONNECT_TIMEOUT` seconds) they
raise a :class:`~vitplast.errors.VitplastError` naming the offline alternatives, instead of letting the hub
client retry for a minute.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from vitplast.errors import VitplastError

CONNECT_TIMEOUT = 3.0
ALTERNATIVES = "use --random-weights, or local weights timm:ARCH@FILE.safetensors (or hf:DIR)"


def offline_mode() -> bool:
    """Whether the hub clients are told to stay offline."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_reachable(timeout: float = CONNECT_TIMEOUT) -> bool:
    """Whether a TCP connection to the hub's host (``HF_ENDPOINT``, default huggingface.co) opens in time."""
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", port), timeout=timeout):
            return True
    except OSError:
        return False


def require_download(spec: str, cached: Callable[[], bool]) -> None:
    """Raise unless the weights of ``spec`` are cached (``cached()``) or the hub can be used now."""
    if cached():
        return
    if offline_mode():
        why = "offline mode (HF_HUB_OFFLINE) and they are not in the local cache"
    elif not hub_reachable():
        why = "the Hugging Face hub cannot be reached and they are not in the local cache"
    else:
        return
    raise VitplastError(f"cannot download the weights of {spec}: {why}; {ALTERNATIVES}")


def _in_hub_cache(repo: str, filenames: tuple[str, ...]) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(repo, f), str) for f in filenames)


def timm_cached(arch: str) -> bool:
    """Whether timm's pretrained weights of ``arch`` are already on disk (hub cache, torch hub or a file)."""
    import timm
    import torch

    cfg = timm.models.get_pretrained_cfg(arch)
    if cfg is None:
        return True  # unknown to timm: let timm say so
    if cfg.file and Path(cfg.file).is_file():
        return True
    if cfg.hf_hub_id and _in_hub_cache(
        cfg.hf_hub_id.split("@")[0], ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")
    ):
        return True
    url = cfg.url if isinstance(cfg.url, str) else ""
    return bool(url) and (Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name).is_file()


def require_timm_weights(arch: str, spec: str) -> None:
    require_download(spec, lambda: timm_cached(arch))


def require_hf_weights(repo: str, spec: str) -> None:
    require_download(spec, lambda: _in_hub_cache(repo, ("config.json",)))
