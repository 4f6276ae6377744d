"""A naive, obviously-correct implementation of the plasticity definition, for tests and benchmarks.

It materialises both outputs of every component for every pair (memory grows with the number of pairs),
applies FC2 to the input explicitly zero-padded to FC2's input width (the MLP hidden width, also for gated MLPs
whose FC1 has twice as many outputs), and evaluates ``||f(X) - f(Y)||_F / ||X - Y||_F`` literally over every
token of the sequence (class, distillation, register and patch tokens). It runs each component as the
:class:`~vitplast.models.vit.Block` defines it (``docs/model-families.md``), so it covers every supported family;
``tests/test_model_families.py`` checks that these components compose to each library's own forward pass.
Use :func:`vitplast.plasticity.measure_plasticity` for real work.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vitplast.models import ViT


@torch.no_grad()
def naive_outputs(
    vit: ViT, x: Tensor, y: Tensor, mode: str = "embedding"
) -> list[dict[str, tuple[Tensor, Tensor, Tensor, Tensor]]]:
    """Per layer: component -> (input_X, input_Y, output_X, output_Y), computed separately for X and Y."""
    per_stream = []
    for img in (x, y):
        h = vit.embed(img)
        layers: list[dict[str, tuple[Tensor, Tensor]]] = []
        for blk in vit.blocks:
            if mode == "embedding":
                e = h if not layers else layers[0]["ln1"][0]
                pad = F.pad(e, (0, blk.fc2.in_features - e.shape[-1]))
                layers.append(
                    {
                        "ln1": (e, blk.ln1(e)),
                        "mha": (e, blk.mha(e)),
                        "ln2": (e, blk.ln2(e)),
                        "fc1": (e, blk.fc1(e)),
                        "fc2": (e, blk.fc2(pad)),
                    }
                )
            else:
                a = blk.ln1(h)
                m = blk.mha(a)
                h2 = h + m
                c = blk.ln2(h2)
                u = blk.fc1(c)
                g = blk.act(u)
                o = blk.fc2(g)
                layers.append({"ln1": (h, a), "mha": (a, m), "ln2": (h2, c), "fc1": (c, u), "fc2": (g, o)})
                h = h2 + o
        per_stream.append(layers)
    out = []
    for lx, ly in zip(per_stream[0], per_stream[1], strict=True):
        out.append({k: (lx[k][0], ly[k][0], lx[k][1], ly[k][1]) for k in lx})
    return out


def naive_plasticity(
    vit: ViT,
    source: Tensor | None,
    target: Tensor | None,
    mode: str = "embedding",
    batch_size: int = 16,
    batches: Iterable[tuple[Tensor, Tensor]] | None = None,
) -> np.ndarray:
    """Per-pair ratios ``[N, depth, 5]`` (NaN for pairs with X == Y), holding every output of every pair.

    Pairs come from ``source``/``target`` tensors or, if given, from ``batches`` of ``(x, y)``.
    """
    from vitplast.components import COMPONENTS

    if batches is None:
        assert source is not None and target is not None
        batches = ((source[i : i + batch_size], target[i : i + batch_size]) for i in range(0, len(source), batch_size))
    stored = [naive_outputs(vit, x, y, mode) for x, y in batches]
    ratios = []
    for chunk in stored:
        per_layer = []
        for layer in chunk:
            per_comp = []
            for comp in COMPONENTS:
                ix, iy, ox, oy = layer[comp]
                num = torch.linalg.vector_norm((ox - oy).double(), dim=(1, 2))
                den = torch.linalg.vector_norm((ix - iy).double(), dim=(1, 2))
                per_comp.append(torch.where(den > 0, num / den, torch.full_like(num, float("nan"))))
            per_layer.append(torch.stack(per_comp, 1))
        ratios.append(torch.stack(per_layer, 1))
    return torch.cat(ratios).cpu().numpy()
