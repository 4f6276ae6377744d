"""Loss landscape of a component group along its own SGD trajectory (``docs/landscape.md``).

For each group: the classifier is a new random head (or the linear probe, ``head_init="probe"``) and stays
frozen with every parameter outside the group, and plain SGD trains the group for ``steps`` updates (mini-batches of the train split, no
augmentation, model in eval mode so that the function trained is the function plotted). The flat group vector
is recorded after every update. The landscape is the mean cross-entropy on a fixed evaluation set (the first
``eval_images`` images of a seeded permutation of the train split, eval transform) at
``theta_T + a u + b v`` on the grid of :mod:`vitplast.landscape.geometry`; each trajectory point's loss on the
same set is recorded too.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parameters_to_vector

from vitplast.data import DataBundle, DataContext, IndexedSet, Transformed, load_data, make_transform
from vitplast.errors import VitplastError
from vitplast.landscape.config import LandscapeConfig, resolve_panel
from vitplast.landscape.geometry import grid_axes, loss_surface, pca_directions, project
from vitplast.landscape.result import GroupLandscape, LandscapeResult
from vitplast.models import ViT, load_model
from vitplast.progress import Progress, phase
from vitplast.runtime import resolve_device
from vitplast.train.batches import SeededAugment, StreamSampler, loader, train_transform
from vitplast.train.groups import freeze_except
from vitplast.train.head_init import init_head_from_probe


def _assign(params: list[nn.Parameter], vec: Tensor) -> None:
    with torch.no_grad():
        offset = 0
        for p in params:
            n = p.numel()
            p.copy_(vec[offset : offset + n].view_as(p))
            offset += n


def _flat(params: list[nn.Parameter]) -> Tensor:
    return parameters_to_vector([p.detach() for p in params]).clone()


def eval_set(vit: ViT, bundle: DataBundle, n: int, seed: int) -> tuple[Tensor, Tensor, np.ndarray]:
    """The fixed evaluation images ``[n, 3, H, W]``, labels and train-split indices (seeded permutation)."""
    total = len(bundle.train)  # type: ignore[arg-type]
    idx = np.random.default_rng([seed, 7]).permutation(total)[: min(n, total)]
    ds = Transformed(IndexedSet(bundle.train, idx), make_transform(vit.data_config, train=False))
    xs, ys = zip(*(ds[i] for i in range(len(ds))), strict=True)
    return torch.stack(list(xs)), torch.as_tensor(ys), idx


def group_landscape(
    vit: ViT,
    bundle: DataBundle,
    group: str,
    cfg: LandscapeConfig,
    images: Tensor,
    labels: Tensor,
    progress: Progress | None = None,
) -> GroupLandscape:
    """Train ``group`` alone from the model's current weights, measure its landscape, restore the weights.

    ``group`` is a panel of :func:`~vitplast.landscape.config.panel`: a whole group, or unit sets joined by ``+``
    (``mha@8-11+ln2``), whose tensors are those a finetuning run of the same set trains
    (:func:`vitplast.train.groups.trainable_groups`), flattened item after item.

    ``images``/``labels`` (on the model's device) are the fixed evaluation set. The head and every other group
    stay frozen; the model is left as it was given.
    """
    t0 = time.perf_counter()
    flags = [p.requires_grad for p in vit.module.parameters()]
    params = freeze_except(vit, group.split("+"))
    for p in params["head"]:
        p.requires_grad_(False)
    trained = [p for item, ps in params.items() if item != "head" for p in ps]
    if not trained:
        raise VitplastError(f"{vit.name} has no parameters in group {group!r}")
    device = images.device

    def loss_at(vec: Tensor) -> float:
        _assign(trained, vec)
        with torch.no_grad():
            return float(F.cross_entropy(vit(images), labels))

    start = _flat(trained)
    n_train = len(bundle.train)  # type: ignore[arg-type]
    data = SeededAugment(bundle.train, train_transform(vit.data_config, "none"))
    sampler = StreamSampler(n_train, cfg.seed, 0, cfg.steps * cfg.batch_size)
    opt = torch.optim.SGD(trained, lr=cfg.lr)
    snapshots = [start]
    advance = phase(progress, f"{group}: SGD steps", cfg.steps)
    for x, y in loader(data, cfg.batch_size, 0, sampler):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(vit(x.to(device)), y.to(device)).backward()
        opt.step()
        snapshots.append(_flat(trained))
        advance(1)
    trajectory = torch.stack(snapshots)
    try:
        directions = pca_directions(trajectory)
        coords = project(trajectory, directions)
        alphas, betas = grid_axes(coords, cfg.grid, cfg.span)
        advance = phase(progress, f"{group}: trajectory loss", len(trajectory))
        traj_loss = np.empty(len(trajectory))
        for t, vec in enumerate(trajectory):
            traj_loss[t] = loss_at(vec)
            advance(1)
        surface = loss_surface(loss_at, trajectory[-1], directions, alphas, betas, progress, f"{group}: grid")
    finally:
        _assign(trained, start)
        for p, flag in zip(vit.module.parameters(), flags, strict=True):
            p.requires_grad_(flag)
    return GroupLandscape(
        group=group,
        n_params=int(start.numel()),
        alphas=alphas,
        betas=betas,
        loss=surface,
        coords=coords,
        trajectory_loss=traj_loss,
        explained=directions.explained,
        distance=float((trajectory[-1] - trajectory[0]).double().norm()),
        seconds=time.perf_counter() - t0,
    )


def compute_landscape(
    cfg: LandscapeConfig,
    model: ViT | None = None,
    data: DataBundle | None = None,
    progress: Progress | None = None,
) -> LandscapeResult:
    """Landscapes of ``cfg.groups``, each trained from the same start (the model with one frozen new head).

    The groups' block indices are checked against the model first (:func:`~vitplast.landscape.config.resolve_panel`;
    a unit set naming every block is the whole group); the result's config records them resolved.

    ``model``/``data`` override ``cfg.model``/``cfg.data`` (the model gets a new head; its weights are restored
    after each group). Raises :class:`VitplastError` on bad input before any work is done.
    """
    device = resolve_device(cfg.device)
    vit = model if model is not None else load_model(cfg.model, random_weights=cfg.random_weights, seed=cfg.seed)
    cfg = replace(cfg, groups=tuple(resolve_panel(g, vit.depth, vit.name) for g in cfg.groups))
    bundle = data if data is not None else load_data(cfg.data, DataContext(input_size=vit.data_config.input_size))
    n_train = len(bundle.train)  # type: ignore[arg-type]
    if cfg.batch_size > n_train:
        raise VitplastError(f"--batch-size {cfg.batch_size} is larger than the train split of {bundle.name} ({n_train})")
    vit.eval()
    torch.manual_seed(cfg.seed)
    vit.reset_head(bundle.num_classes)
    head: dict[str, Any] = {"init": f"{cfg.head_init} (frozen)"}
    if cfg.head_init == "probe":
        advance = phase(progress, "fitting the probe head", 1)
        head["probe_train_acc"] = init_head_from_probe(vit, bundle)
        advance(1)
    vit.to(device)
    images, labels, idx = eval_set(vit, bundle, cfg.eval_images, cfg.seed)
    images, labels = images.to(device), labels.to(device)
    results = [group_landscape(vit, bundle, g, cfg, images, labels, progress) for g in cfg.groups]
    info = {
        "model": {"spec": vit.name, "depth": vit.depth, "dim": vit.dim, "library": vit.library},
        "data": {"spec": cfg.data if data is None else bundle.name, "num_classes": bundle.num_classes, "train_images": n_train},
        "head": head,
        "evaluation_set": {
            "split": "train",
            "n_images": len(idx),
            "indices": idx.tolist(),
            "transform": "eval (no augmentation)",
            "loss": "mean cross-entropy",
        },
        "optimizer": {"name": "SGD", "lr": cfg.lr, "momentum": 0.0, "batch_size": cfg.batch_size},
        "device": str(device),
    }
    return LandscapeResult(cfg, results, info)

