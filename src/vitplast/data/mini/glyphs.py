"""``mini:latin``, ``mini:greek``, ``mini:cyrillic``, ``mini:digit-glyphs``: letters rendered from the fonts that ship
with matplotlib, train / val / test from different typefaces.

Classes (one per character): :data:`SCRIPTS`. Every character is rendered by FreeType (matplotlib's
``ft2font``, no hinting, anti-aliased) from the TrueType files in matplotlib's own ``mpl-data/fonts/ttf``
(installed with every matplotlib; nothing is downloaded). The split is by typeface (:data:`FACES`):
train images come from the 8 DejaVu Sans and DejaVu Serif faces, val images from the 4 DejaVu Sans Mono
faces and test images from the 4 STIXGeneral faces (a Times-like design from another foundry), so no
test image shares a glyph outline with a training image. Per class and face: 24 train, 12 val and 12 test
images (:data:`PER_FACE`), i.e. per class 192 / 48 / 48.

Each glyph is cropped to its ink and scaled so its longer side is ``U(0.45, 0.8)`` of the 32 px image,
rotated by ``U(-25, 25)`` degrees, sheared by ``U(-0.25, 0.25)``, shifted inside the image, and painted
in a colour that contrasts with the background (lightness at least 0.35 from the background's mean) over
the procedural background of :mod:`vitplast.data.mini.procedural` with 0-4 clutter items; then pixel
noise. The affine warp is applied at 64 px and averaged down to 32 px (anti-aliasing). Everything comes
from ``SeedSequence([VERSION, script, split])``; built in seconds and cached as
``ROOT/mini/glyphs-{script}-v{VERSION}.pt``.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vitplast.data.base import DataBundle
from vitplast.data.mini import procedural
from vitplast.data.mini.cache import SPLITS, Splits
from vitplast.data.mini.common import cache_file, cached_bundle
from vitplast.data.registry import DataContext

VERSION = 1  # bump when the construction changes (invalidates caches)
#: script name -> its characters (one class each)
SCRIPTS: dict[str, str] = {
    "latin": "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "greek": "".join(chr(c) for c in range(0x3B1, 0x3CA) if c != 0x3C2),  # alpha..omega without final sigma
    "cyrillic": "".join(chr(c) for c in range(0x410, 0x430)),  # A..YA (32 capitals)
    "digit-glyphs": "0123456789",
}
#: split -> the matplotlib font files it is rendered from
FACES: dict[str, tuple[str, ...]] = {
    "train": (
        "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf",
        "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf",
    ),
    "val": ("DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf",
            "DejaVuSansMono-BoldOblique.ttf"),
    "test": ("STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf"),
}
PER_FACE = {"train": 24, "val": 12, "test": 12}
ATLAS = 64  # px of the square glyph masks the warp samples from
SIZE = 32
SCALE = (0.45, 0.8)
ROTATION = 25.0  # degrees, +-
SHEAR = 0.25
MIN_CONTRAST = 0.35


def font_path(name: str) -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name


@functools.lru_cache(maxsize=2048)
def glyph_mask(face: str, char: str) -> np.ndarray:
    """``float32 [ATLAS, ATLAS]`` coverage in 0..1 of ``char`` in font file ``face``: cropped to its ink, the longer
    side scaled to ``ATLAS`` px, centred."""
    from matplotlib.ft2font import FT2Font, LoadFlags

    font = FT2Font(str(font_path(face)))
    if ord(char) not in font.get_charmap():
        raise ValueError(f"{face} has no glyph for {char!r}")
    font.set_size(2 * ATLAS, 72)
    font.set_text(char, 0.0, flags=LoadFlags.NO_HINTING)
    font.draw_glyphs_to_bitmap(antialiased=True)
    img = np.asarray(font.get_image(), dtype=np.float32) / 255.0
    rows, cols = np.flatnonzero(img.max(1) > 0.05), np.flatnonzero(img.max(0) > 0.05)
    img = img[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    side = max(img.shape)
    canvas = np.zeros((side, side), np.float32)
    r0, c0 = (side - img.shape[0]) // 2, (side - img.shape[1]) // 2
    canvas[r0 : r0 + img.shape[0], c0 : c0 + img.shape[1]] = img
    t = torch.from_numpy(canvas)[None, None]
    out = F.interpolate(t, size=(ATLAS, ATLAS), mode="bilinear", antialias=True, align_corners=False)[0, 0]
    return out.clamp(0.0, 1.0).numpy()  # the antialiasing filter can overshoot by ~1e-7


def warp(masks: np.ndarray, rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """Random similarity + shear of each mask ``[B, A, A]`` into a ``[B, size, size]`` coverage map (warped at
    ``2 * size`` px and 2x2-averaged)."""
    b = len(masks)
    scale = rng.uniform(*SCALE, b)
    ang = np.deg2rad(rng.uniform(-ROTATION, ROTATION, b))
    shear = rng.uniform(-SHEAR, SHEAR, b)
    room = np.maximum(1.0 - scale * (1 + abs(shear)) * 1.2, 0.0)  # keep the glyph (about) inside the image
    shift = rng.uniform(-1, 1, (2, b)) * room
    # forward map (glyph -> image, normalised coords): x' = R S H x * scale + shift; affine_grid needs the inverse
    cos, sin = np.cos(ang), np.sin(ang)
    fwd = np.zeros((b, 2, 2))
    fwd[:, 0, 0], fwd[:, 0, 1] = cos, cos * shear - sin
    fwd[:, 1, 0], fwd[:, 1, 1] = sin, sin * shear + cos
    fwd *= scale[:, None, None]
    inv = np.linalg.inv(fwd)
    theta = np.concatenate([inv, -(inv @ shift.T[:, :, None])], axis=2)
    grid = F.affine_grid(torch.as_tensor(theta, dtype=torch.float32), [b, 1, 2 * size, 2 * size], align_corners=False)
    out = F.grid_sample(torch.from_numpy(masks)[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return F.avg_pool2d(out, 2)[:, 0].numpy()


def paint(coverage: np.ndarray, rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """Paint coverage maps ``[B, S, S]`` in a contrasting colour over the procedural background with clutter and
    pixel noise; ``uint8 [B, 3, S, S]``."""
    b = len(coverage)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) + np.float32(0.5)
    x, y = np.broadcast_to(xs, (b, size, size)), np.broadcast_to(ys, (b, size, size))
    img = procedural.background(rng, b, size, x, y)
    procedural.composite(img, procedural.clutter(rng, b, size, x, y), front=False)
    mean = img.mean(axis=(1, 2, 3))
    light = rng.uniform(MIN_CONTRAST, 1.0, b)
    value = np.where(mean < 0.5, np.minimum(mean + light, 1.0), np.maximum(mean - light, 0.0))
    hsv = np.stack([rng.random(b), rng.uniform(0.0, 0.9, b), value], -1)
    colour = procedural.hsv_rgb(hsv)[:, :, None, None]
    alpha = coverage[:, None].astype(np.float32)
    img += (colour - img) * alpha
    return procedural.finish(img, rng)


def render(faces: tuple[str, ...], chars: str, per_face: int, seed: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_face`` images of every (face, character), shuffled: ``uint8 [N, 3, 32, 32]`` and labels ``[N]``."""
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    pairs = [(f, c) for f in range(len(faces)) for c in range(len(chars)) for _ in range(per_face)]
    order = rng.permutation(len(pairs))
    face_idx = np.asarray([pairs[i][0] for i in order])
    labels = np.asarray([pairs[i][1] for i in order], dtype=np.int64)
    masks = np.stack([glyph_mask(faces[f], chars[c]) for f, c in zip(face_idx, labels, strict=True)])
    images = paint(warp(masks, rng), rng)
    return torch.from_numpy(images), torch.from_numpy(labels)


def build(script: str) -> Splits:
    """The three splits of ``script`` (no cache)."""
    index = list(SCRIPTS).index(script)
    return {
        s: render(FACES[s], SCRIPTS[script], PER_FACE[s], [VERSION, index, k]) for k, s in enumerate(SPLITS)
    }


def load(script: str, arg: str, ctx: DataContext) -> DataBundle:
    """The cached bundle of ``script`` (``arg``: the spec argument, unused: checked by the caller)."""
    path = cache_file(ctx, f"glyphs-{script}-v{VERSION}.pt")
    return cached_bundle(
        f"mini:{script}",
        [f"U+{ord(c):04X} {c}" for c in SCRIPTS[script]],
        path,
        lambda: build(script),
        origin="characters rendered from matplotlib's fonts; train DejaVu Sans/Serif, val DejaVu Sans Mono, "
        "test STIXGeneral",
        faces={s: list(FACES[s]) for s in SPLITS},
        version=VERSION,
    )
