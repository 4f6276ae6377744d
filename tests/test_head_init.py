"""LP-FT: a run with ``head_init="probe"`` starts from the standardised linear probe, fitted once per process."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vitplast.train import cache, head_init
from vitplast.train.config import TrainConfig
from vitplast.train.loop import prepare


@pytest.fixture
def counted_fit(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = head_init.fit_probe_head

    def fit(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(head_init, "fit_probe_head", fit)
    cache.clear()
    yield calls
    cache.clear()


def _cfg(seed: int, train: str = "mha") -> TrainConfig:
    return TrainConfig.for_data("micro", "random:96", train=train, seed=seed, head_init="probe", batch_size=32)


def test_the_head_starts_as_the_probe_and_is_fitted_once(counted_fit: list[int]) -> None:
    from sklearn.linear_model import LogisticRegression

    from vitplast.train.probe import C_GRID

    a = prepare(_cfg(0))
    f, y = head_init.classifier_inputs(a.vit, a.bundle.train)
    fv, yv = head_init.classifier_inputs(a.vit, a.bundle.val)
    mu, sigma = f.mean(0), f.std(0) + 1e-6
    # the definition, by hand: C chosen on the validation split (first best), then the standardised probe
    fits = {c: LogisticRegression(C=c, max_iter=2000).fit((f - mu) / sigma, y) for c in C_GRID}
    val = {c: clf.score((fv - mu) / sigma, yv) for c, clf in fits.items()}
    clf = fits[max(C_GRID, key=lambda c: (val[c], -C_GRID.index(c)))]
    with torch.no_grad():
        logits = a.vit.classifier(torch.as_tensor(f)).double().numpy()
    ref = clf.decision_function((f - mu) / sigma)
    assert np.allclose(logits, ref, atol=1e-3)  # same logits as the probe (float32 head)
    assert (logits.argmax(1) == clf.predict((f - mu) / sigma)).mean() > 0.999
    b = prepare(_cfg(1, "ln1"))  # another seed and group: the same backbone and train split
    assert len(counted_fit) == 1  # the second run reuses the cached head
    assert torch.equal(a.vit.classifier.weight, b.vit.classifier.weight)
    assert torch.equal(a.vit.classifier.bias, b.vit.classifier.bias)


def test_a_given_model_is_never_served_a_cached_head(counted_fit: list[int]) -> None:
    prepare(_cfg(0))
    given = cache.model("micro")
    with torch.no_grad():
        for p in given.module.parameters():
            p.mul_(0.5)  # another backbone: its probe differs
    c = prepare(_cfg(0), model=given)
    assert len(counted_fit) == 2
    assert not torch.equal(c.vit.classifier.weight, prepare(_cfg(0)).vit.classifier.weight)
