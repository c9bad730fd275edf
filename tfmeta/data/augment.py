"""Training-time image augmentation, applied inside the episode stream (never to validation, test
or served images).

``affine``: the random affine distortions of Koch, Zemel & Salakhutdinov (2015, "Siamese Neural
Networks for One-shot Image Recognition", section 4.1), each image on its own: a rotation
``theta`` in [-10, 10] degrees, shears ``rho_x, rho_y`` in [-0.3, 0.3], scales ``s_x, s_y`` in
[0.8, 1.2] and a translation of up to 2/105 of the image side (2 pixels of Omniglot's 105), each
of the four kept with probability 1/2 (the paper's code). Pixels brought in from outside the
image repeat the nearest edge pixel, which for drawings is the background.

Everything is a stateless function of a seed, so episode ``i`` is the same on every run and a
resumed run sees the augmentation it would have seen.
"""

from __future__ import annotations

import math

import tensorflow as tf

AUGMENTATIONS = ("affine",)

# Koch et al.'s ranges.
ROTATION_DEGREES = 10.0
SHEAR = 0.3
SCALE = 0.2
TRANSLATE = 2.0 / 105.0


def check_augment(name) -> None:
    from tfmeta.errors import DataError

    if name is not None and name not in AUGMENTATIONS:
        raise DataError(f"augment must be one of {', '.join(AUGMENTATIONS)} (or None), got "
                        f"{name!r}")


def affine_transforms(count, height: int, width: int, seed):
    """``[count, 8]`` transforms of Koch et al.'s random affine distortions (see
    :func:`affine_matrix`)."""
    keys = tf.random.experimental.stateless_split(seed, 2)
    u = tf.random.stateless_uniform([count, 7], keys[0], -1.0, 1.0)
    keep = tf.cast(tf.random.stateless_uniform([count, 4], keys[1]) < 0.5, tf.float32)
    return affine_matrix(
        theta=keep[:, 0] * u[:, 0] * ROTATION_DEGREES * math.pi / 180.0,
        shear_x=keep[:, 1] * u[:, 1] * SHEAR, shear_y=keep[:, 1] * u[:, 2] * SHEAR,
        scale_x=1.0 + keep[:, 2] * u[:, 3] * SCALE, scale_y=1.0 + keep[:, 2] * u[:, 4] * SCALE,
        shift_x=keep[:, 3] * u[:, 5] * TRANSLATE * width,
        shift_y=keep[:, 3] * u[:, 6] * TRANSLATE * height, height=height, width=width)


def affine_matrix(theta, shear_x, shear_y, scale_x, scale_y, shift_x, shift_y, height: int,
                  width: int):
    """``[count, 8]`` projective transforms in the layout of
    ``tf.raw_ops.ImageProjectiveTransformV3`` (each maps an output pixel to the input pixel it
    samples) of the affine maps ``p -> A (p - c) + c + shift`` about the image centre ``c``, with
    ``A = rotation(theta) @ [[1, shear_x], [shear_y, 1]] @ diag(scale_x, scale_y)``; every
    argument is a ``[count]`` tensor (pixels for the shifts, radians for ``theta``)."""
    cos, sin = tf.cos(theta), tf.sin(theta)
    a00 = cos * scale_x - sin * shear_y * scale_x
    a01 = cos * shear_x * scale_y - sin * scale_y
    a10 = sin * scale_x + cos * shear_y * scale_x
    a11 = sin * shear_x * scale_y + cos * scale_y
    det = a00 * a11 - a01 * a10
    i00, i01, i10, i11 = a11 / det, -a01 / det, -a10 / det, a00 / det  # A^-1
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    ox, oy = cx + shift_x, cy + shift_y  # where the centre goes
    # The input pixel of output pixel p: A^-1 (p - c - shift) + c.
    zeros = tf.zeros_like(a00)
    return tf.stack([i00, i01, cx - i00 * ox - i01 * oy,
                     i10, i11, cy - i10 * ox - i11 * oy, zeros, zeros], axis=1)


def transform_images(images, transforms):
    """``images [N, H, W, C]`` float resampled by ``transforms [N, 8]`` (bilinear; pixels from
    outside repeat the nearest edge pixel)."""
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms,
        output_shape=tf.constant([images.shape[1], images.shape[2]]), fill_value=0.0,
        interpolation="BILINEAR", fill_mode="NEAREST")


def augment_images(name: str, images, seed):
    """``images`` ``[..., H, W, C]`` float, augmented by the policy ``name`` with ``seed``
    (a ``[2]`` integer tensor)."""
    shape = tf.shape(images)
    height, width = images.shape[-3], images.shape[-2]
    flat = tf.reshape(images, tf.concat([[-1], shape[-3:]], 0))
    out = transform_images(flat, affine_transforms(tf.shape(flat)[0], height, width, seed))
    return tf.reshape(out, shape)
