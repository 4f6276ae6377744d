"""Export a choice of trainable groups to the user's own training stack (docs/selectors.md, "Export").

* :func:`select` freezes every parameter of a raw timm or Hugging Face ViT except the chosen groups or unit
  sets (``mha@8-11``, :mod:`vitplast.units`) and the head, and returns the trainable parameter names, in the
  model's own naming;
* :func:`peft_plan` / :func:`peft_config` express the same choice as a PEFT config: LoRA on the linear layers
  of the chosen ``mha fc1 fc2`` groups or units (only those of the chosen blocks), LayerNorm tuning for chosen
  ``ln1 ln2`` groups or units, and full training (``modules_to_save``) of the chosen ``embed`` modules and of
  the head;
* :func:`write_export` writes both into a directory.

Module names are never spelled here: they are read from the model itself, as the names of the modules that own
each group's parameters (the groups come from the model adapters, :meth:`vitplast.models.vit.ViT.param_groups`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from vitplast.components import LN_CONTROL
from vitplast.errors import VitplastError
from vitplast.io import output_dir, write_json_atomic, write_text_atomic
from vitplast.models import ViT, as_vit
from vitplast.train.groups import parse_groups, trainable_groups
from vitplast.units import resolve

LINEAR_GROUPS = ("mha", "fc1", "fc2")
LN_GROUPS = ("ln1", "ln2")


def _component(item: str) -> str:
    """``"mha@8-11"`` -> ``"mha"`` (the group of a unit set; a group is its own)."""
    return item.partition("@")[0]


def _resolve(model: ViT | nn.Module, groups: str | Sequence[str], head: bool) -> tuple[nn.Module, ViT, dict[str, set[int]]]:
    vit = as_vit(model)
    root = model if isinstance(model, nn.Module) else vit.module
    chosen = resolve(groups, vit.depth, vit.name)
    if chosen == (LN_CONTROL,):
        raise VitplastError(f"{LN_CONTROL!r} trains a random subset of tensor entries: an export of whole tensors cannot express it")
    selected = trainable_groups(vit, chosen)
    if not head:
        selected.pop("head", None)
    for g, ps in selected.items():
        if not ps:
            raise VitplastError(f"{vit.name}: the model has no parameters in group {g!r}")
    return root, vit, {g: {id(p) for p in ps} for g, ps in selected.items()}


def select(model: ViT | nn.Module, groups: str | Sequence[str], head: bool = True) -> list[str]:
    """Set ``requires_grad`` True exactly on the parameters of ``groups`` (``"full"``, ``"mha,fc1"``,
    ``"mha@8-11,ln2"`` or a list)
    plus, with ``head``, the head (classifier and final norm); False on all others. Returns the names (as
    ``model.named_parameters()`` spells them) of the trainable parameters."""
    root, _, ids = _resolve(model, groups, head)
    keep = set().union(*ids.values())
    names = []
    for name, p in root.named_parameters():
        p.requires_grad_(id(p) in keep)
        if id(p) in keep:
            names.append(name)
    return names


@dataclass
class PeftPlan:
    """Module names of a PEFT export: ``lora`` (LoRA targets), ``layernorms`` (LN tuning), ``save`` (trained
    in full: embed modules, head) and ``uncovered``: parameters of a chosen group that no module but the root
    owns (e.g. a position embedding stored on the model itself), which PEFT cannot train.

    The PEFT config trains less than ``trainable_parameters.txt`` lists: LoRA learns a low-rank update of each
    target's weight (not the full weight) and, with PEFT's default ``bias="none"``, leaves the target's bias
    frozen. ``lora_biases`` names those biases: trained in the parameter list, frozen under the LoRA config."""

    lora: list[str] = field(default_factory=list)
    layernorms: list[str] = field(default_factory=list)
    save: list[str] = field(default_factory=list)
    uncovered: list[str] = field(default_factory=list)
    lora_biases: list[str] = field(default_factory=list)


def peft_plan(model: ViT | nn.Module, groups: str | Sequence[str], head: bool = True) -> PeftPlan:
    """Which modules of ``model`` a PEFT config must name to train ``groups`` (module docstring)."""
    root, _, ids = _resolve(model, groups, head)
    if "full" in parse_groups(groups):
        raise VitplastError("a PEFT export needs component groups, not 'full' (full finetuning needs no PEFT)")
    plan = PeftPlan()
    owner: dict[int, str] = {i: g for g, s in ids.items() for i in s}
    for name, mod in root.named_modules():
        direct = list(mod.named_parameters(recurse=False))
        if not direct:
            continue
        gs = {owner.get(id(p)) for _, p in direct}
        if len(gs) != 1 or None in gs:
            continue
        g = _component(str(gs.pop()))
        if any(name.startswith(f"{s}.") for s in plan.save):
            continue  # inside a module already trained in full
        if not name:
            plan.uncovered += [n for n, _ in direct]
        elif g in LINEAR_GROUPS and isinstance(mod, nn.Linear):
            plan.lora.append(name)
            if mod.bias is not None:
                plan.lora_biases.append(f"{name}.bias")
        elif g in LN_GROUPS and isinstance(mod, nn.LayerNorm):
            plan.layernorms.append(name)
        else:
            plan.save.append(name)
    if not plan.lora and not plan.layernorms:
        raise VitplastError("a PEFT export needs at least one of mha fc1 fc2 ln1 ln2 (embed alone: use the "
                            "parameter-name list)")
    return plan


def peft_config(model: ViT | nn.Module, groups: str | Sequence[str], r: int = 8, alpha: int = 16,
                head: bool = True) -> Any:
    """A ``peft`` config for ``groups``: ``LoraConfig`` (LoRA rank ``r``, scale ``alpha``; chosen LayerNorms,
    embed and head in ``modules_to_save``) when a linear group is chosen, else ``LNTuningConfig``."""
    try:
        from peft import LNTuningConfig, LoraConfig
    except ImportError:
        raise VitplastError("the PEFT export needs peft: pip install 'vitplast[peft]'") from None
    plan = peft_plan(model, groups, head)
    if plan.lora:
        return LoraConfig(r=r, lora_alpha=alpha, target_modules=plan.lora,
                          modules_to_save=(plan.layernorms + plan.save) or None)
    return LNTuningConfig(target_modules=plan.layernorms, modules_to_save=plan.save or None)


def write_export(model: ViT | nn.Module, groups: str | Sequence[str], out: Path, head: bool = True) -> list[Path]:
    """Write ``trainable_parameters.txt`` (one name a line, as :func:`select` returns them; the model is left with
    those parameters trainable) and, when peft is installed and the groups allow it, ``peft/adapter_config.json``
    (load with ``peft.PeftConfig.from_pretrained(out / "peft")``) plus ``peft/plan.json``. Atomic."""
    names = select(model, groups, head)
    written = [out / "trainable_parameters.txt"]
    with output_dir(out) as stage:
        write_text_atomic(stage / written[0].name, "\n".join(names) + "\n")
        chosen = parse_groups(groups)
        if "full" not in chosen and any(_component(g) in LINEAR_GROUPS + LN_GROUPS for g in chosen):
            try:
                cfg = peft_config(model, groups, head=head)
            except VitplastError as exc:
                if "pip install" not in str(exc):
                    raise
            else:
                cfg.save_pretrained(str(stage / "peft"))
                write_json_atomic(stage / "peft" / "plan.json", vars(peft_plan(model, groups, head)))
                written += [out / "peft" / "adapter_config.json", out / "peft" / "plan.json"]
    return written
