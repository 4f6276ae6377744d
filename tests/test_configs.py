"""The metadata-driven config layer: type, finiteness, range and choice checks, YAML construction."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from vitplast.configs import default_of, from_mapping, help_of, option, validate
from vitplast.errors import VitplastError


@dataclass(frozen=True)
class Inner:
    k: int = option(3, help="An int >= 1.", ge=1)

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class Cfg:
    lr: float = option(1e-3, help="Learning rate.", gt=0)
    steps: int = option(10, help="Steps.", ge=1)
    mode: str = option("a", help="Mode.", choices=("a", "b"))
    warmup_steps: int | None = option(None, help="Warmup.", ge=0)
    groups: tuple[str, ...] = option(("mha",), help="Groups.", choices=("mha", "ln1"))
    inner: Inner = option(default_factory=Inner, help="Nested.")
    flag: bool = option(False, help="A flag.")

    def __post_init__(self) -> None:
        validate(self)
        if self.warmup_steps is not None and self.warmup_steps > self.steps:
            raise VitplastError("--warmup-steps must be <= --steps")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": 0.0}, "--lr must be > 0"),
        ({"lr": math.inf}, "--lr must be a finite number"),
        ({"lr": math.nan}, "--lr must be a finite number"),
        ({"steps": 0}, "--steps must be >= 1"),
        ({"steps": 2.5}, "--steps must be int"),
        ({"steps": True}, "--steps must be int"),
        ({"mode": "c"}, "--mode must be one of a, b"),
        ({"groups": ("mha", "fc9")}, "--groups must be one of mha, ln1"),
        ({"warmup_steps": -1}, "--warmup-steps must be >= 0"),
        ({"flag": 1}, "--flag must be bool"),
        ({"warmup_steps": 11}, "--warmup-steps must be <= --steps"),
    ],
)
def test_bad_values_name_the_option(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(VitplastError, match=message):
        Cfg(**kwargs)  # type: ignore[arg-type]


def test_good_values_and_metadata() -> None:
    cfg = Cfg(lr=2, warmup_steps=None, groups=("ln1",))
    assert cfg.lr == 2 and cfg.inner.k == 3
    assert help_of(Cfg, "lr") == "Learning rate."
    assert default_of(Cfg, "steps") == 10 and default_of(Cfg, "inner") == Inner()


def test_from_mapping_builds_typed_nested_configs() -> None:
    cfg = from_mapping(Cfg, {"lr": 1, "groups": ["mha", "ln1"], "inner": {"k": 5}}, where="train")
    assert cfg == Cfg(lr=1.0, groups=("mha", "ln1"), inner=Inner(k=5))
    assert isinstance(cfg.lr, float)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"lrr": 1}, r"train: unknown key 'lrr'"),
        ({"lr": "fast"}, r"train\.lr must be float, got 'fast'"),
        ({"lr": -1}, r"train\.lr must be > 0"),
        ({"inner": {"k": 0}}, r"train\.inner\.k must be >= 1"),
        ({"groups": "mha"}, r"train\.groups must be a list of str"),
        ({"warmup_steps": 50}, r"train: --warmup-steps must be <= --steps"),
    ],
)
def test_from_mapping_errors_name_the_yaml_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(VitplastError, match=message):
        from_mapping(Cfg, data, where="train")
