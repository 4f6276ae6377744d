"""The sweep preflight: models load once, and a model that cannot load fails once, in one line."""

from __future__ import annotations

import pytest

from vitplast.errors import VitplastError
from vitplast.sweep import build_plan, parse_sweep
from vitplast.sweep.preflight import preflight


def test_unloadable_weights_fail_once_before_any_task(monkeypatch: pytest.MonkeyPatch) -> None:
    import vitplast.models as models

    calls: list[str] = []

    def offline(spec: str, random_weights: bool = False, seed: int = 0) -> object:
        calls.append(spec)
        raise OSError("We couldn't connect to 'https://huggingface.co'\nretrying ...")

    monkeypatch.setattr(models, "load_model", offline)
    plan = build_plan(parse_sweep({"models": ["timm:vit_base_patch16_224"], "datasets": ["random:16", "random:17"],
                                   "groups": ["mha", "ln1"], "lrs": [0.1, 0.2], "probe": True}))
    with pytest.raises(VitplastError) as exc:
        preflight(plan)
    message = str(exc.value)
    assert calls == ["timm:vit_base_patch16_224"]  # once, not once per task
    assert "\n" not in message and "cannot be loaded" in message and "--random-weights" in message
