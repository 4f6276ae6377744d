"""Loss landscapes (docs/landscape.md): the geometry against closed forms, the model run against its invariants."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.tiny_models import tiny_timm
from vitplast.data import DataContext, load_data
from vitplast.errors import VitplastError
from vitplast.landscape import LandscapeConfig, compute_landscape, grid_axes, loss_surface, pca_directions, project
from vitplast.landscape.run import eval_set
from vitplast.models import as_vit


def _random_walk(t: int, p: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    steps = torch.randn(t, p, generator=g, dtype=torch.float64) * torch.linspace(2.0, 0.1, p, dtype=torch.float64)
    return torch.cat([torch.zeros(1, p, dtype=torch.float64), steps.cumsum(0)])


def test_directions_are_orthonormal() -> None:
    d = pca_directions(_random_walk(12, 40))
    gram = d.vectors @ d.vectors.T
    assert torch.allclose(gram, torch.eye(2, dtype=torch.float64), atol=1e-12)
    assert d.explained[0] >= d.explained[1] > 0 and sum(d.explained) <= 1 + 1e-12


def test_projections_reconstruct_offsets_up_to_explained_variance() -> None:
    traj = _random_walk(15, 30, seed=1)
    d = pca_directions(traj)
    coords = torch.as_tensor(project(traj, d))
    offsets = traj - traj[-1]
    residual = offsets - coords @ d.vectors
    lost = float((residual**2).sum() / (offsets**2).sum())
    assert lost == pytest.approx(1 - sum(d.explained), rel=1e-9, abs=1e-12)
    # Naive: eigenvalues of the offsets' Gram matrix give the same explained fractions.
    eig = np.sort(np.linalg.eigvalsh((offsets[:-1] @ offsets[:-1].T).numpy()))[::-1]
    assert d.explained == pytest.approx(tuple(eig[:2] / eig.sum()), rel=1e-9)
    assert np.allclose(coords[-1].numpy(), 0.0) and (coords[0].numpy() <= 0).all()


def test_trajectory_in_a_plane_is_reconstructed_exactly() -> None:
    p = 8
    traj = torch.zeros(6, p, dtype=torch.float64)
    traj[:, 2] = torch.arange(6.0) ** 2
    traj[:, 5] = torch.arange(6.0) - 3
    d = pca_directions(traj)
    assert sum(d.explained) == pytest.approx(1.0, abs=1e-12)
    coords = torch.as_tensor(project(traj, d))
    assert torch.allclose(coords @ d.vectors, traj - traj[-1], atol=1e-10)


def test_quadratic_toy_loss_gives_the_analytic_landscape() -> None:
    """GD on L(x) = 1/2 (x - x*)^T A (x - x*); the grid must equal the closed form in (a, b) at every point."""
    g = torch.Generator().manual_seed(3)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=torch.float64))
    a_mat = q @ torch.diag(torch.tensor([5.0, 2.0, 1.0, 0.5, 0.2, 0.1], dtype=torch.float64)) @ q.T
    x_star = torch.randn(6, generator=g, dtype=torch.float64)

    def loss(x: torch.Tensor) -> float:
        r = x - x_star
        return float(0.5 * r @ a_mat @ r)

    x = torch.randn(6, generator=g, dtype=torch.float64)
    points = [x]
    for _ in range(10):
        x = x - 0.15 * a_mat @ (x - x_star)
        points.append(x)
    traj = torch.stack(points)
    d = pca_directions(traj)
    alphas, betas = grid_axes(project(traj, d), 7, 2.0)
    surface = loss_surface(loss, traj[-1], d, alphas, betas)
    u, v = d.vectors
    r = traj[-1] - x_star
    c0, cu, cv = float(r @ a_mat @ r) / 2, float(u @ a_mat @ r), float(v @ a_mat @ r)
    uu, uv, vv = float(u @ a_mat @ u), float(u @ a_mat @ v), float(v @ a_mat @ v)
    aa, bb = np.meshgrid(alphas, betas, indexing="ij")
    analytic = c0 + aa * cu + bb * cv + 0.5 * aa**2 * uu + aa * bb * uv + 0.5 * bb**2 * vv
    assert np.allclose(surface, analytic, rtol=1e-10, atol=1e-12)
    assert surface[3, 3] == loss(traj[-1])


def test_grid_axes_are_symmetric_with_the_final_point_at_the_centre() -> None:
    coords = np.array([[-3.0, 1.0], [-1.0, -0.5], [0.0, 0.0]])
    alphas, betas = grid_axes(coords, 5, 1.5)
    assert alphas[2] == 0.0 and betas[2] == 0.0
    assert alphas[-1] == pytest.approx(4.5) and betas[0] == pytest.approx(-1.5)
    assert np.allclose(alphas, -alphas[::-1]) and np.allclose(np.diff(alphas), alphas[-1] / 2)
    flat = grid_axes(np.array([[-2.0, 0.0], [0.0, 0.0]]), 3, 1.0)[1]
    assert flat[-1] == pytest.approx(2.0)  # no extent along PC2: borrows PC1's half-width
    for k in (2, 4):
        with pytest.raises(VitplastError, match="odd"):
            grid_axes(coords, k, 1.0)


def test_a_trajectory_that_does_not_move_is_an_error() -> None:
    with pytest.raises(VitplastError, match="did not move"):
        pca_directions(torch.ones(5, 4))


@pytest.mark.parametrize(
    "kwargs, message",
    [({"grid": 2}, "--grid must be >= 3"), ({"grid": 6}, "--grid must be odd"), ({"steps": 2}, "--steps must be >= 3"),
     ({"groups": ("head",)}, "--groups .head. is not a component group"), ({"groups": ("mha", "mha")}, "twice"),
     ({"span": 0.0}, "--span must be > 0"), ({"head_init": "zeros"}, "--head-init must be one of")],
)
def test_config_refuses_bad_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(VitplastError, match=message):
        LandscapeConfig(**kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def tiny_run() -> tuple[object, object, object, bool]:
    vit = as_vit(tiny_timm(img=16, num_classes=10), "tiny")
    bundle = load_data("random:24", DataContext(input_size=16))
    cfg = LandscapeConfig(groups=("mha", "ln1"), steps=4, grid=3, batch_size=8, eval_images=16, lr=0.5,
                          device="cpu", seed=1)
    body = [p for g, ps in vit.param_groups().items() if g != "head" for p in ps]
    before = [p.detach().clone() for p in body]
    res = compute_landscape(cfg, model=vit, data=bundle)
    restored = all(torch.equal(p, q) for p, q in zip(body, before, strict=True))
    return vit, bundle, res, restored


def test_grid_centre_equals_the_loss_at_the_final_point(tiny_run: tuple) -> None:  # type: ignore[type-arg]
    vit, bundle, res, _ = tiny_run
    images, labels, _ = eval_set(vit, bundle, res.config.eval_images, res.config.seed)
    with torch.no_grad():
        start_loss = float(F.cross_entropy(vit(images), labels))
    for g in res.groups:
        assert g.center_loss == g.trajectory_loss[-1]
        assert g.trajectory_loss[0] == pytest.approx(start_loss, rel=1e-6)  # every group starts from the same weights
        assert np.allclose(g.coords[-1], 0.0) and g.loss.shape == (3, 3) and len(g.coords) == 5
        assert g.trajectory_loss[-1] != g.trajectory_loss[0]


def test_model_is_restored_and_only_the_group_is_recorded(tiny_run: tuple) -> None:  # type: ignore[type-arg]
    vit, _, res, restored = tiny_run
    assert restored
    groups = vit.param_groups()
    assert [g.n_params for g in res.groups] == [sum(p.numel() for p in groups[n]) for n in ("mha", "ln1")]
    assert all(p.requires_grad for p in vit.module.parameters())
    table, traj = res.landscape_table(), res.trajectory_table()
    assert len(table) == 2 * 9 and len(traj) == 2 * 5 and list(traj.columns) == ["group", "step", "alpha", "beta", "loss"]
    rec = res.to_dict()
    assert rec["evaluation_set"]["n_images"] == 16 and rec["config"]["groups"] == ("mha", "ln1")
