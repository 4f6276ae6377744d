"""Export of a group choice: select() on raw timm / HF models, parameter-name lists, PEFT configs (offline)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.tiny_models import tiny_hf, tiny_timm
from vitplast.errors import VitplastError
from vitplast.export import peft_config, peft_plan, select, write_export

# What each group is called in each library: the test's own naive spelling, independent of the adapters.
TIMM = {"mha": (".attn.",), "ln1": (".norm1.",), "ln2": (".norm2.",), "fc1": (".mlp.fc1.",), "fc2": (".mlp.fc2.",),
        "head": ("head.", "norm."), "embed": ("patch_embed.", "cls_token", "pos_embed")}
HF = {"mha": (".attention.",), "ln1": (".layernorm_before.",), "ln2": (".layernorm_after.",), "fc1": (".mlp.fc1.",),
      "fc2": (".mlp.fc2.",), "head": ("classifier.", "vit.layernorm."), "embed": ("vit.embeddings.",)}


def _model(lib: str) -> torch.nn.Module:
    return tiny_timm(dim=16, heads=2) if lib == "timm" else tiny_hf(dim=16, heads=2, mlp=40)


def _expected(model: torch.nn.Module, lib: str, groups: list[str]) -> list[str]:
    pats = TIMM if lib == "timm" else HF
    want = [p for g in [*groups, "head"] for p in pats[g]]
    return [n for n, _ in model.named_parameters() if any(n.startswith(p) or p in n for p in want)]


@pytest.mark.parametrize("lib", ["timm", "hf"])
@pytest.mark.parametrize("groups", [["mha"], ["ln1", "fc2"], ["embed", "fc1"]])
def test_select_freezes_everything_else(lib: str, groups: list[str]) -> None:
    m = _model(lib)
    names = select(m, groups)
    assert names == _expected(m, lib, groups)
    assert [n for n, p in m.named_parameters() if p.requires_grad] == names
    assert select(m, "full") == [n for n, _ in m.named_parameters()]
    assert "head.weight" not in select(tiny_timm(dim=16, heads=2), "mha", head=False)


@pytest.mark.parametrize("lib", ["timm", "hf"])
def test_peft_accepts_the_config_and_trains_exactly_the_choice(lib: str, tmp_path: Path) -> None:
    peft = pytest.importorskip("peft")
    m = _model(lib)
    plan = peft_plan(m, "mha,ln2")
    linear = {n for n, mod in m.named_modules() if isinstance(mod, torch.nn.Linear)}
    assert set(plan.lora) == {n for n in linear if any(p in n + "." for p in (TIMM if lib == "timm" else HF)["mha"])}
    written = write_export(m, "mha,ln2", tmp_path / "exp")
    cfg = peft.PeftConfig.from_pretrained(str(tmp_path / "exp" / "peft"))
    assert set(cfg.target_modules) == set(plan.lora) and written[0].read_text().split() == select(m, "mha,ln2")
    x = torch.randn(2, 3, 16, 16)
    base = _model(lib)
    pm = peft.get_peft_model(base, cfg)
    trainable = [n for n, p in pm.named_parameters() if p.requires_grad]
    assert sum("lora_A" in n for n in trainable) == len(plan.lora)
    ln2 = [n for n in plan.layernorms]
    assert all(any(f"{name}.modules_to_save" in n for n in trainable) for name in ln2 + plan.save)
    assert not any(".fc1." in n or "norm1" in n or "layernorm_before" in n for n in trainable)
    # the LoRA targets' biases: trained by the parameter list, frozen by the LoRA config, and named in the plan
    biases = {f"{n}.bias" for n in plan.lora if getattr(m.get_submodule(n), "bias", None) is not None}
    assert biases and set(plan.lora_biases) == biases and biases <= set(select(m, "mha,ln2"))
    under_lora = {n: p.requires_grad for n, p in pm.named_parameters()
                  if n.endswith(".bias") and any(f".{b.removesuffix('.bias')}." in n for b in biases)}
    assert len(under_lora) == len(biases) and not any(under_lora.values())
    out = pm(x)
    logits = out if isinstance(out, torch.Tensor) else out.logits
    assert torch.allclose(logits, _model(lib)(x) if lib == "timm" else _model(lib)(x).logits, atol=1e-5)  # B = 0


@pytest.mark.parametrize("lib", ["timm", "hf"])
def test_layernorm_only_choice_is_ln_tuning(lib: str) -> None:
    peft = pytest.importorskip("peft")
    m = _model(lib)
    cfg = peft_config(m, ["ln1"])
    assert type(cfg).__name__ == "LNTuningConfig"
    pm = peft.get_peft_model(m, cfg)
    tuned = {n.split(".ln_tuning_layers")[0] for n, p in pm.named_parameters() if "ln_tuning_layers" in n and p.requires_grad}
    assert {t.removeprefix("base_model.model.") for t in tuned} == set(peft_plan(_model(lib), "ln1").layernorms)


def test_bad_exports() -> None:
    m = tiny_timm(dim=16, heads=2)
    with pytest.raises(VitplastError, match="unknown trainable group 'attn'"):
        select(m, "attn")
    with pytest.raises(VitplastError, match="not 'full'"):
        peft_plan(m, "full")
    with pytest.raises(VitplastError, match="embed alone"):
        peft_plan(m, "embed")
    no_affine = tiny_timm(dim=16, heads=2)
    for b in no_affine.blocks:
        b.norm1 = torch.nn.LayerNorm(16, elementwise_affine=False)
    with pytest.raises(VitplastError, match="no parameters in group 'ln1'"):
        select(no_affine, "ln1")
    assert peft_plan(m, "embed,ln1").uncovered == ["cls_token", "pos_embed"]
