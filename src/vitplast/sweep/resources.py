"""How a sweep's trials are given resources: :class:`Resources` and the checks of the executor options.

Torch-free (the command line checks these options before it loads anything heavy); only a check that needs
the GPU count imports torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from vitplast.configs import option, validate
from vitplast.errors import VitplastError

EXECUTORS = ("ray", "local")


@dataclass
class Resources:
    """Per-trial resources and concurrency (Ray executor; the local executor only uses ``cpus_per_trial``
    as its torch thread count when given). Values are checked on construction (NaN, negative or zero
    counts are refused in one line); :meth:`validate` checks them against this machine and the cluster."""

    address: str | None = option(None, help="Ray cluster address (default: start a local Ray).")
    cpus_per_trial: float | None = option(None, help="CPUs per trial (default 1; torch threads).", gt=0)
    gpus_per_trial: float | None = option(
        None, help="GPUs per trial, may be fractional (default: 1 if CUDA, else 0).", ge=0)
    max_concurrent: int | None = option(None, help="At most N trials at once (default: as resources allow).", ge=1)
    bundle: int | None = option(None, help="Finetuning runs trained together per trial, a run bundle (default: "
                                "by device, see docs/mini-protocol.md).", ge=1)

    def __post_init__(self) -> None:
        validate(self)

    def resolved(self) -> tuple[float, float]:
        """``(cpus, gpus)`` per trial: explicit values, else 1 CPU and, on a local machine with CUDA GPUs,
        one GPU per trial with the CPUs shared among the concurrent trials."""
        gpus = self.gpus_per_trial
        if gpus is None:
            gpus = 1.0 if self.address is None and cuda_count() > 0 else 0.0
        cpus = self.cpus_per_trial
        if cpus is None:
            cpus = 1.0
            if gpus > 0 and self.address is None:
                slots = max(1, int(cuda_count() / gpus))
                cpus = float(max(1, (os.cpu_count() or 1) // slots))
        return cpus, gpus

    def validate(self) -> None:
        """What can only be checked here: without ``address`` a trial's GPUs must exist on this machine (a
        trial asking for more would wait forever); an ``address`` (``ray://HOST:PORT`` or ``HOST:PORT``) must
        answer a connection within :data:`CONNECT_TIMEOUT` seconds."""
        validate(self)
        if self.address is None and self.gpus_per_trial:
            have = cuda_count()
            if self.gpus_per_trial > have:
                raise VitplastError(f"--gpus-per-trial {self.gpus_per_trial:g} needs a CUDA GPU, but this machine "
                                    f"has {have} (use --gpus-per-trial 0, or --address of a cluster with GPUs)")
        if self.address:
            check_reachable(self.address)


#: Seconds a cluster address has to accept a connection before the sweep is refused.
CONNECT_TIMEOUT = 5.0


def check_reachable(address: str) -> None:
    """Refuse, in one line, a Ray address whose ``HOST:PORT`` does not accept a TCP connection (``auto`` and
    ``local`` are Ray's own words and pass)."""
    import socket

    if address in ("auto", "local"):
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise VitplastError(f"--address must be ray://HOST:PORT, HOST:PORT, auto or local, got {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        raise VitplastError(f"--address {address} does not answer ({exc.strerror or exc})") from None


def check_executor(executor: str) -> None:
    """``executor`` is ``auto`` or one of :data:`EXECUTORS`."""
    if executor not in ("auto", *EXECUTORS):
        raise VitplastError(f"--executor must be one of auto, {', '.join(EXECUTORS)}, got {executor!r}")


def cuda_count() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # pragma: no cover - a broken CUDA install counts as none
        return 0
