"""Selectors against naive implementations of their formulas (docs/selectors.md)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from tests.tiny_models import tiny_hf, tiny_timm
from vitplast.errors import VitplastError
from vitplast.models import as_vit
from vitplast.models.vit import ViT
from vitplast.plasticity import measure_plasticity
from vitplast.selectors import REGISTRY, SelectorData, score
from vitplast.train.groups import SELECTABLE


def _data(n: int = 6, classes: int = 3, seed: int = 0, img: int = 16) -> SelectorData:
    g = torch.Generator().manual_seed(5)
    return SelectorData(images=torch.randn(n, 3, img, img, generator=g), labels=torch.arange(n) % classes,
                        num_classes=classes, source=torch.randn(n, 3, img, img, generator=g), seed=seed, batch_size=4)


def _naive_clone(vit: ViT, data: SelectorData) -> ViT:
    clone = as_vit(copy.deepcopy(vit.module))
    torch.manual_seed(data.seed)
    clone.reset_head(data.num_classes)
    return clone.eval()


def _naive_grads(vit: ViT, data: SelectorData) -> tuple[ViT, dict[str, list[tuple[torch.Tensor, torch.Tensor]]]]:
    """Per group: (parameter, dL/dparameter) with L the mean CE over all images in one batch."""
    clone = _naive_clone(vit, data)
    groups = clone.param_groups()
    loss = F.cross_entropy(clone.logits(data.images), data.labels)
    out = {}
    for g in SELECTABLE:
        ps = list({id(p): p for p in groups[g]}.values())
        gs = torch.autograd.grad(loss, ps, retain_graph=True, allow_unused=True)
        out[g] = [(p.detach(), torch.zeros_like(p) if d is None else d) for p, d in zip(ps, gs, strict=True)]
    return clone, out


@pytest.fixture(scope="module", params=["timm", "hf"])
def vit(request: pytest.FixtureRequest) -> ViT:
    return as_vit(tiny_timm(dim=16, heads=2, depth=2) if request.param == "timm" else tiny_hf(dim=16, heads=2, mlp=40))


def test_gradient_selectors_match_naive(vit: ViT) -> None:
    data = _data()
    _, grads = _naive_grads(vit, data)
    gn, gp, rgn, rgn_all, tay = (score(n, vit, data) for n in ("grad-norm", "grad-norm-param", "auto-rgn",
                                                                 "auto-rgn-all", "taylor"))
    for g, pg in grads.items():
        norm = math.sqrt(sum(float((d.double() ** 2).sum()) for _, d in pg))
        count = sum(p.numel() for p, _ in pg)
        assert gn.groups[g] == pytest.approx(norm, rel=1e-4)
        assert gp.groups[g] == pytest.approx(norm / math.sqrt(count), rel=1e-4)
        w = [float(d.norm() / p.norm()) for p, d in pg if p.ndim >= 2]
        a = [float(d.norm() / p.norm()) for p, d in pg if float(p.norm()) > 0]
        assert (math.isnan(rgn.groups[g]) if not w else rgn.groups[g] == pytest.approx(sum(w) / len(w), rel=1e-4))
        assert rgn_all.groups[g] == pytest.approx(sum(a) / len(a), rel=1e-4)
        assert tay.groups[g] == pytest.approx(sum(float((p * d).abs().sum()) for p, d in pg), rel=1e-4)
    assert math.isnan(rgn.groups["ln1"]) and not math.isnan(rgn_all.groups["ln1"])
    # per block: the block's share of the group's squared gradient norm adds up to the group's
    for c in ("ln1", "mha", "fc1"):
        assert math.sqrt(sum(v**2 for v in gn.blocks[c])) == pytest.approx(gn.groups[c], rel=1e-4)
        assert len(gn.blocks[c]) == vit.depth


def test_fisher_matches_per_sample_loop(vit: ViT) -> None:
    data = _data(n=5)
    clone = _naive_clone(vit, data)
    groups = clone.param_groups()
    sq = {g: 0.0 for g in SELECTABLE}
    for i in range(len(data.images)):
        loss = F.cross_entropy(clone.logits(data.images[i : i + 1]), data.labels[i : i + 1])
        for g in SELECTABLE:
            ps = list({id(p): p for p in groups[g]}.values())
            gs = torch.autograd.grad(loss, ps, retain_graph=True, allow_unused=True)
            sq[g] += sum(float((d.double() ** 2).sum()) for d in gs if d is not None)
    fisher = score("fisher", vit, data)
    for g in SELECTABLE:
        assert fisher.groups[g] == pytest.approx(sq[g] / len(data.images), rel=1e-4)
    # Jensen: the squared norm of the mean gradient never exceeds the mean squared norm of per-sample gradients
    gn = score("grad-norm", vit, data)
    assert all(gn.groups[g] ** 2 <= fisher.groups[g] * (1 + 1e-6) for g in SELECTABLE)


def test_plasticity_selectors_are_the_estimator_means(vit: ViT) -> None:
    data = _data(n=6)
    s = score("plasticity", vit, data)
    t = measure_plasticity(vit, data.source, data.images).table  # type: ignore[arg-type]
    for c in ("ln1", "mha", "ln2", "fc1", "fc2"):
        per = t[t["component"] == c].sort_values("layer")["mean"].tolist()
        assert s.blocks[c] == pytest.approx(per)
        assert s.groups[c] == pytest.approx(sum(per) / len(per))
    assert math.isnan(s.groups["embed"]) and s.ranking()[-1] == "embed"
    tgt = score("plasticity-target", vit, data)
    t2 = measure_plasticity(vit, data.images[:3], data.images[3:6]).table
    assert tgt.groups["mha"] == pytest.approx(t2[t2["component"] == "mha"]["mean"].mean())
    ins = score("plasticity-insitu", vit, data)
    t3 = measure_plasticity(vit, data.source, data.images, mode="insitu").table  # type: ignore[arg-type]
    assert ins.groups["fc1"] == pytest.approx(t3[t3["component"] == "fc1"]["mean"].mean())


def test_params_random_and_ranking(vit: ViT) -> None:
    data = _data()
    p = score("params", vit, data)
    groups = vit.param_groups()
    for g in SELECTABLE:
        assert p.groups[g] == sum(x.numel() for x in {id(x): x for x in groups[g]}.values())
    assert p.ranking()[0] in ("mha", "fc1", "fc2") and p.ranking()[-1] in ("ln1", "ln2")
    r1, r2 = score("random", vit, data), score("random", vit, _data(seed=1))
    assert r1.groups == score("random", vit, _data()).groups and r1.groups != r2.groups
    assert all(0 <= v < 1 for v in r1.groups.values())


def test_selectors_leave_the_model_untouched_and_cache_follows_changes() -> None:
    m = tiny_timm(dim=16, heads=2, depth=2)
    vit = as_vit(m)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    data = _data()
    a = score("grad-norm", vit, data)
    assert m.head.out_features == 5 and all(p.grad is None for p in m.parameters())
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    with torch.no_grad():
        m.blocks[0].attn.qkv.weight.mul_(2.0)
    b = score("grad-norm", vit, data)
    assert b.groups["mha"] != a.groups["mha"]


def test_unknown_selector_and_bad_data() -> None:
    vit = as_vit(tiny_timm(dim=16, heads=2, depth=1))
    with pytest.raises(VitplastError, match="unknown selector 'nope'"):
        score("nope", vit, _data())
    with pytest.raises(VitplastError, match="needs source images"):
        score("plasticity", vit, SelectorData(torch.randn(4, 3, 16, 16), torch.zeros(4, dtype=torch.long), 2))
    with pytest.raises(VitplastError, match="labels"):
        SelectorData(torch.randn(4, 3, 16, 16), torch.full((4,), 3), 2)
    assert set(REGISTRY) >= {"plasticity", "fisher", "auto-rgn", "taylor", "params", "random"}
