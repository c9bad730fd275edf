"""``glyphs``: a built-in, procedurally generated few-shot dataset that needs no download.

Each class is a random handwritten-like glyph of 1-4 pen strokes (cubic Bezier curves that start
where a pen might lift and land). Each sample redraws the class's glyph the way another hand would:
every control point jitters, the pen width changes, and the whole glyph is rotated, scaled, sheared
and shifted a little. So two samples of a class share structure, not pixels: a pixel
nearest-neighbour classifier does poorly and a learned embedding does well, which is what a
few-shot benchmark has to show (README reports both).

Rendering is one batched matrix product per chunk: a stroke is a dense chain of Gaussian pen dots,
and a sum of separable Gaussians over dots is ``Gy^T @ diag(w) @ Gx``. 2,400 classes x 20 samples
at 28x28 take a few seconds; :func:`glyphs` caches the result on disk (``$TFMETA_CACHE_DIR`` or
``~/.cache/tfmeta``) so later runs load it in milliseconds. The same arguments always give the same
pixels.
"""

from __future__ import annotations

import hashlib
import os
import tempfile

import numpy as np

from tfmeta.data.source import ImageSource

GLYPHS_VERSION = 1
_DOTS_PER_STROKE = 48


def _class_strokes(rng: np.random.Generator, num_classes: int) -> tuple:
    """Control points ``[classes, 4 strokes, 4 points, 2]`` in the unit square and stroke masks."""
    num_strokes = rng.integers(1, 5, size=num_classes)
    mask = np.arange(4)[None, :] < num_strokes[:, None]
    start = rng.uniform(0.2, 0.8, size=(num_classes, 4, 1, 2))
    angle = rng.uniform(0, 2 * np.pi, size=(num_classes, 4, 3))
    # A stroke wanders with turning direction: each segment turns from the previous one.
    angle = np.cumsum(angle * np.array([1.0, 0.35, 0.35]), axis=-1)
    length = rng.uniform(0.15, 0.38, size=(num_classes, 4, 3))
    steps = np.stack([np.cos(angle), np.sin(angle)], -1) * length[..., None]
    points = np.concatenate([start, start + np.cumsum(steps, axis=2)], axis=2)
    return np.clip(points, 0.08, 0.92), mask


def _bezier(points: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Cubic Bezier curves ``points[..., 4, 2]`` evaluated at ``t`` -> ``[..., len(t), 2]``."""
    b = np.stack([(1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t ** 2, t ** 3], -1)
    return np.einsum("tk,...kd->...td", b, points)


def _render(dots: np.ndarray, weights: np.ndarray, sigma: np.ndarray, size: int) -> np.ndarray:
    """Pen dots ``[n, P, 2]`` with ``weights [n, P]`` and pen widths ``sigma [n]`` -> ``[n, size, size]``."""
    centres = (np.arange(size) + 0.5) / size
    s = sigma[:, None, None]
    gx = np.exp(-0.5 * ((dots[..., 0:1] - centres) / s) ** 2)          # [n, P, size]
    gy = np.exp(-0.5 * ((dots[..., 1:2] - centres) / s) ** 2)
    image = np.einsum("npi,np,npj->nij", gy, weights, gx, optimize=True)
    return np.clip(1.6 * image, 0.0, 1.0)


def generate_glyphs(num_classes: int = 2400, samples_per_class: int = 20, image_size: int = 28,
                    seed: int = 0) -> ImageSource:
    """Generate the glyphs dataset in memory (see the module docstring); white strokes on black."""
    if num_classes < 1 or samples_per_class < 1 or image_size < 8:
        raise ValueError("glyphs needs num_classes >= 1, samples_per_class >= 1, image_size >= 8")
    rng = np.random.default_rng(seed)
    control, mask = _class_strokes(rng, num_classes)
    t = np.linspace(0.0, 1.0, _DOTS_PER_STROKE)
    images = np.empty((num_classes * samples_per_class, image_size, image_size), np.uint8)
    chunk = max(1, 4096 // samples_per_class)
    for first in range(0, num_classes, chunk):
        cls = np.arange(first, min(first + chunk, num_classes))
        n = len(cls) * samples_per_class
        pts = np.repeat(control[cls], samples_per_class, axis=0)               # [n, 4, 4, 2]
        pts = pts + rng.normal(0.0, 0.04, size=pts.shape)                      # stroke jitter
        dots = _bezier(pts, t)                                                  # [n, 4, D, 2]
        # Small affine distortion about the centre: rotation, scale, shear, shift.
        theta = rng.uniform(-0.35, 0.35, n)
        scale = rng.uniform(0.75, 1.15, (n, 2))
        shear = rng.uniform(-0.3, 0.3, n)
        a = np.stack([np.cos(theta), -np.sin(theta), np.sin(theta), np.cos(theta)], -1).reshape(n, 2, 2)
        a = a @ np.stack([np.ones(n), shear, np.zeros(n), np.ones(n)], -1).reshape(n, 2, 2)
        a = a * scale[:, None, :]
        shift = rng.uniform(-0.12, 0.12, (n, 1, 1, 2))
        dots = np.einsum("nij,nsdj->nsdi", a, dots - 0.5) + 0.5 + shift
        # Weight each dot by the arc length it stands for, so a line has the same ink at any speed.
        seg = np.linalg.norm(np.diff(dots, axis=2), axis=-1)
        arc = np.concatenate([seg[..., :1], (seg[..., 1:] + seg[..., :-1]) / 2, seg[..., -1:]], -1)
        sigma = rng.uniform(0.02, 0.045, n)
        weights = arc / (sigma[:, None, None] * np.sqrt(2 * np.pi))
        weights = weights * np.repeat(mask[cls], samples_per_class, axis=0)[..., None]
        rendered = _render(dots.reshape(n, -1, 2), weights.reshape(n, -1), sigma, image_size)
        start = first * samples_per_class
        images[start:start + n] = np.round(rendered * 255).astype(np.uint8)
    names = tuple(f"glyph{c:05d}" for c in range(num_classes))
    offsets = np.arange(num_classes + 1, dtype=np.int64) * samples_per_class
    return ImageSource(images[..., None], names, offsets)


def default_cache_dir() -> str:
    return os.environ.get("TFMETA_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "tfmeta")


def glyphs(num_classes: int = 2400, samples_per_class: int = 20, image_size: int = 28,
           seed: int = 0, cache_dir: str | None = None) -> ImageSource:
    """The glyphs dataset, generated on first use and cached on disk afterwards."""
    cache_dir = cache_dir or default_cache_dir()
    key = f"v{GLYPHS_VERSION}-{num_classes}-{samples_per_class}-{image_size}-{seed}"
    path = os.path.join(cache_dir, f"glyphs-{hashlib.sha1(key.encode()).hexdigest()[:12]}.npz")
    if os.path.exists(path):
        try:
            with np.load(path) as f:
                if str(f["key"]) == key:
                    return ImageSource(f["images"], tuple(str(n) for n in f["class_names"]),
                                       f["offsets"])
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache file is regenerated below
    source = generate_glyphs(num_classes, samples_per_class, image_size, seed)
    try:
        os.makedirs(cache_dir, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, key=key, images=source.images, class_names=np.array(source.class_names),
                     offsets=source.offsets)
        os.replace(tmp, path)  # atomic: a killed run never leaves a half-written cache
    except OSError:
        pass  # an unwritable cache only costs regeneration next time
    return source
