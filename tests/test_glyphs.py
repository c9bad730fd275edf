import time

import numpy as np

from tfmeta.data import generate_glyphs, glyphs


def test_glyphs_are_deterministic_and_shaped():
    a = generate_glyphs(num_classes=10, samples_per_class=5, seed=1)
    b = generate_glyphs(num_classes=10, samples_per_class=5, seed=1)
    c = generate_glyphs(num_classes=10, samples_per_class=5, seed=2)
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.array_equal(a.images, c.images)
    assert a.images.shape == (50, 28, 28, 1) and a.images.dtype == np.uint8
    assert a.images.max() == 255 and (a.images > 0).mean() < 0.5  # strokes on a dark ground


def test_samples_of_a_class_share_structure_not_pixels():
    s = generate_glyphs(num_classes=40, samples_per_class=10, seed=0)
    x = s.images.reshape(40, 10, -1).astype(np.float32) / 255
    assert all(not np.array_equal(x[0, 0], x[0, i]) for i in range(1, 10))
    # Coarse (7x7-averaged) samples of a class are closer to each other than to other classes'.
    coarse = x.reshape(40, 10, 7, 4, 7, 4).mean(axis=(3, 5)).reshape(40, 10, -1)
    d = ((coarse[:, :, None, None] - coarse[None, None]) ** 2).sum(-1)   # [40, 10, 40, 10]
    same = np.mean([d[c, :, c].mean() for c in range(40)])
    other = np.mean([d[c, :, (c + 1) % 40].mean() for c in range(40)])
    assert same < 0.6 * other


def test_full_dataset_generates_fast_and_is_cached(tmp_path):
    began = time.time()
    s = glyphs(cache_dir=str(tmp_path))
    generated = time.time() - began
    assert s.num_classes >= 2000 and set(s.counts) == {20}
    assert generated < 60
    began = time.time()
    again = glyphs(cache_dir=str(tmp_path))
    assert time.time() - began < generated / 3
    np.testing.assert_array_equal(again.images, s.images)
