"""Training-time augmentation (tfmeta.data.augment) against independent computations: numpy
shifts and rotations, and the episode stream's reproducibility."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tfmeta.data import DataConfig, EpisodeConfig, EpisodeSampler
from tfmeta.data.augment import affine_matrix, augment_images, transform_images
from tfmeta.errors import DataError


def _transform(images, **given):
    values = dict(theta=0.0, shear_x=0.0, shear_y=0.0, scale_x=1.0, scale_y=1.0, shift_x=0.0,
                  shift_y=0.0)
    values.update(given)
    n, height, width = images.shape[:3]
    matrix = affine_matrix(**{k: tf.fill([n], float(v)) for k, v in values.items()},
                           height=height, width=width)
    return transform_images(tf.constant(images), matrix).numpy()


def _image(seed=0, size=9):
    image = np.zeros((1, size, size, 1), np.float32)
    image[0, 2:6, 3:5, 0] = np.random.default_rng(seed).uniform(0.2, 1.0, (4, 2))
    return image


def test_identity_shift_and_rotation_match_numpy():
    image = _image()
    np.testing.assert_allclose(_transform(image), image, atol=1e-6)
    shifted = np.roll(np.roll(image, 1, axis=1), 2, axis=2)  # down 1, right 2 (inside the frame)
    np.testing.assert_allclose(_transform(image, shift_x=2, shift_y=1), shifted, atol=1e-6)
    # +90 degrees about the centre, with y pointing down, is numpy's clockwise quarter turn
    np.testing.assert_allclose(_transform(image, theta=math.pi / 2),
                               np.rot90(image, -1, axes=(1, 2)), atol=1e-5)


def test_scale_about_the_centre_doubles_distances():
    image = np.zeros((1, 11, 11, 1), np.float32)
    image[0, 5, 7, 0] = 1.0  # 2 pixels right of the centre (5, 5)
    out = _transform(image, scale_x=2.0, scale_y=2.0)
    assert out[0, 5, 9, 0] == pytest.approx(1.0) and out[0, 5, 7, 0] == pytest.approx(0.0)


def test_affine_augmentation_is_reproducible_bounded_and_keeps_the_background():
    x = np.ones((3, 4, 28, 28, 1), np.float32)  # white background
    x[..., 8:20, 12:16, :] = 0.0                 # a dark stroke
    a = augment_images("affine", tf.constant(x), tf.constant([1, 2])).numpy()
    b = augment_images("affine", tf.constant(x), tf.constant([1, 2])).numpy()
    c = augment_images("affine", tf.constant(x), tf.constant([1, 3])).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and a.shape == x.shape
    assert a.min() >= 0.0 and a.max() <= 1.0
    np.testing.assert_allclose(a[..., 0, 0, :], 1.0)  # corners stay background (edge fill)
    changed = np.abs(a - x).reshape(12, -1).max(1) > 0.1
    assert 0 < changed.sum() < 12  # each transform is kept with probability 1/2 per part


def test_sampler_augments_training_episodes_only_when_asked(small_glyphs):
    episode = EpisodeConfig(3, 1, 2)
    plain = EpisodeSampler(small_glyphs, episode, 2, seed=4)
    augmented = EpisodeSampler(small_glyphs, episode, 2, seed=4, augment="affine")
    p, a = next(iter(plain.dataset())), next(iter(augmented.dataset()))
    np.testing.assert_array_equal(p[1].numpy(), a[1].numpy())  # same classes and labels
    assert not np.allclose(p[0].numpy(), a[0].numpy())
    again = next(iter(EpisodeSampler(small_glyphs, episode, 2, seed=4,
                                      augment="affine").dataset()))
    np.testing.assert_array_equal(a[0].numpy(), again[0].numpy())  # resume sees the same


def test_unknown_augmentation_is_one_clear_error():
    with pytest.raises(DataError, match="augment must be one of"):
        DataConfig(augment="elastic")
