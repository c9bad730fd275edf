"""Image preprocessing, one definition for training and serving: arrays and files become
``uint8 [N, size, size, channels]`` (``to_uint8_images``), encoded images become the same values
inside a serving graph (``decode_image``), and the polarity of drawings (light on dark, or dark on
light) is measured the same way in both (``dark_on_light``). Keeping these together is what keeps a
served model answering as the meta-trained learner does."""

from __future__ import annotations

import numpy as np

from tfmeta.errors import DataError

ALPHA_BACKGROUND = 255.0  # transparent pixels become white, in loaders and served models alike
GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # RGB -> gray, in loaders and served models alike


def to_uint8_images(images, image_size: int, channels: int) -> np.ndarray:
    """Resize and convert any image array to ``uint8 [N, image_size, image_size, channels]``.

    Accepts ``[N, H, W]`` or ``[N, H, W, C]`` with C in 1 (gray), 2 (gray + alpha), 3 (RGB),
    4 (RGBA); ``uint8`` pixels or floats in ``[0, 1]``. Transparency is composited onto a white
    background (``color * alpha + 255 * (1 - alpha)``), the same policy as the serving graph
    (:func:`decode_image`). Resizing is area-averaging (antialiased) bilinear, the same in every
    code path.
    """
    import tensorflow as tf

    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 2, 3, 4):
        raise DataError(f"images must be [N, H, W] or [N, H, W, C] with C in 1, 2, 3, 4; "
                        f"got shape {images.shape}")
    if images.dtype == np.uint8:
        x = images.astype(np.float32)
    elif np.issubdtype(images.dtype, np.floating) or np.issubdtype(images.dtype, np.integer):
        x = images.astype(np.float32)
        if np.issubdtype(images.dtype, np.floating):
            if x.size and (x.min() < 0 or x.max() > 1):
                raise DataError("float images must lie in [0, 1]")
            x = x * 255.0
    else:
        raise DataError(f"unsupported image dtype {images.dtype}")
    if x.shape[-1] in (2, 4):  # composite onto white
        alpha = x[..., -1:] / 255.0
        x = x[..., :-1] * alpha + ALPHA_BACKGROUND * (1.0 - alpha)
    if channels == 1 and x.shape[-1] == 3:
        x = x @ np.array(GRAY_WEIGHTS, np.float32)[:, None]
    elif channels == 3 and x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    if x.shape[1:3] != (image_size, image_size):
        out = []
        for start in range(0, len(x), 2048):  # bounded memory for large arrays
            out.append(tf.image.resize(x[start:start + 2048], (image_size, image_size),
                                       method="bilinear", antialias=True).numpy())
        x = np.concatenate(out) if out else np.zeros((0, image_size, image_size, channels))
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


POLARITIES = ("light-on-dark", "dark-on-light")


def dark_on_light(images):
    """A scalar boolean tensor: whether most of ``images`` (``[N, H, W, C]``, ``uint8`` or floats
    in ``[0, 1]``, numpy or tensors, inside a graph too) are dark drawings on a light background,
    i.e. the mean of an image's border pixels is above mid-gray. Glyphs are light on dark;
    Omniglot, scans and most photos of parts are dark on light."""
    import tensorflow as tf

    x = tf.convert_to_tensor(images)
    border = tf.concat([x[:, 0], x[:, -1], x[:, :, 0], x[:, :, -1]], axis=1)   # [N, 2H+2W, C]
    border = tf.cast(border, tf.float32) / (255.0 if x.dtype == tf.uint8 else 1.0)
    light = tf.cast(tf.reduce_mean(border, axis=[1, 2]) > 0.5, tf.float32)
    return tf.reduce_mean(light) > 0.5


def other_polarity(images, polarity: str):
    """A scalar boolean tensor: whether ``images`` have the other polarity than ``polarity``
    (in a graph too: the few-shot servable decides per request)."""
    import tensorflow as tf

    return tf.not_equal(dark_on_light(images), polarity == "dark-on-light")


def polarity(images) -> str:
    """``"dark-on-light"`` or ``"light-on-dark"``: see :func:`dark_on_light`."""
    return POLARITIES[int(bool(dark_on_light(images)))]


def decode_image(encoded, height: int, width: int, channels: int):
    """One encoded image -> float32 ``[height, width, channels]`` in ``[0, 1]``, as
    ``to_uint8_images`` does it (transparency composited onto white, gray/RGB
    conversion, antialiased bilinear resize, rounding to 8 bits)."""
    import tensorflow as tf

    image = tf.cast(tf.io.decode_image(encoded, channels=0, expand_animations=False), tf.float32)

    def composite():  # gray + alpha or RGBA: onto the white background
        alpha = image[..., -1:] / 255.0
        return image[..., :-1] * alpha + ALPHA_BACKGROUND * (1.0 - alpha)

    image = tf.cond(tf.equal(tf.shape(image)[-1] % 2, 0), composite, lambda: image)
    image = tf.cond(tf.shape(image)[-1] >= 3, lambda: image[..., :3], lambda: image[..., :1])
    if channels == 1:
        weights = tf.constant(GRAY_WEIGHTS, tf.float32)[:, None]
        image = tf.cond(tf.shape(image)[-1] == 3, lambda: tf.tensordot(image, weights, 1),
                        lambda: image)
    else:
        image = tf.cond(tf.shape(image)[-1] == 1, lambda: tf.tile(image, [1, 1, 3]),
                        lambda: image)
    image = tf.ensure_shape(image, [None, None, channels])
    same = tf.reduce_all(tf.equal(tf.shape(image)[:2], [height, width]))
    image = tf.cond(same, lambda: image, lambda: tf.image.resize(
        image, (height, width), method="bilinear", antialias=True))
    return tf.clip_by_value(tf.round(image), 0.0, 255.0) / 255.0
