"""Any ``keras.applications`` network as a backbone: ``keras_applications:MobileNetV3Small``.

The network is built without its ImageNet classifier (``include_top=False``) for the learner's
output (a ``ways``-unit head, feature vectors or feature maps) and never downloads anything:
pretrained weights come from a local file (``weights=PATH``, e.g. the ``.weights.h5`` of
``keras.applications.MobileNetV3Small(include_top=False, weights="imagenet")`` saved where there is
network). tfmeta feeds images in [0, 1] with 1 or 3 channels; the network's own input convention
(Keras' ``preprocess_input``: [-1, 1], ImageNet mean and deviation, BGR minus the mean, or 0-255
for networks that rescale inside) is a layer of the model, :class:`ApplicationInput`, so every
export takes the same [0, 1] images as training did.
"""

from __future__ import annotations

import os

import keras

from tfmeta.errors import ConfigError

PREFIX = "keras_applications:"
# keras.applications module -> what its preprocess_input does to 0-255 RGB images.
MODES = {"resnet": "caffe", "vgg16": "caffe", "vgg19": "caffe", "densenet": "torch",
         "mobilenet": "tf", "mobilenet_v2": "tf", "resnet_v2": "tf", "inception_v3": "tf",
         "inception_resnet_v2": "tf", "xception": "tf", "nasnet": "tf"}  # others: 0-255 inside
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def names() -> list:
    """The networks of ``keras.applications`` (``MobileNetV3Small``, ``ResNet50``, ...)."""
    return sorted(n for n in dir(keras.applications) if n[:1].isupper()
                  and callable(getattr(keras.applications, n)))


@keras.saving.register_keras_serializable(package="tfmeta")
class ApplicationInput(keras.layers.Layer):
    """Images in [0, 1] -> what a ``keras.applications`` network expects (``mode``: ``"tf"``
    [-1, 1], ``"torch"`` ImageNet-normalised, ``"caffe"`` BGR minus the ImageNet mean on 0-255,
    ``"raw"`` 0-255), one channel repeated to three."""

    def __init__(self, mode: str = "raw", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("tf", "torch", "caffe", "raw"):
            raise ValueError(f"mode must be tf, torch, caffe or raw, got {mode!r}")
        self.mode = mode

    def call(self, images):
        x = keras.ops.cast(images, self.compute_dtype)
        if x.shape[-1] == 1:
            x = keras.ops.repeat(x, 3, axis=-1)
        if self.mode == "tf":
            return x * 2.0 - 1.0
        if self.mode == "torch":
            return (x - keras.ops.array(IMAGENET_MEAN, x.dtype)) / keras.ops.array(
                IMAGENET_STD, x.dtype)
        x = x * 255.0
        if self.mode == "caffe":
            return keras.ops.flip(x, axis=-1) - keras.ops.array(CAFFE_MEAN_BGR, x.dtype)
        return x

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 3)

    def get_config(self):
        return dict(super().get_config(), mode=self.mode)


def application_backbone(spec: str, input_shape, output: str = "features",
                         ways: int | None = None, weights: str | None = None,
                         freeze: bool = False) -> keras.Model:
    """``keras_applications:NAME`` for images of ``input_shape`` (values in [0, 1]), ending as
    :func:`tfmeta.models.build_model` says (``output``, ``ways``). ``weights``: a local weights
    file of the network without its top (loaded by layer name; nothing is downloaded);
    ``freeze``: keep the network's weights fixed (only the head, if any, is meta-learned, and its
    BatchNorm layers keep their statistics)."""
    name = spec[len(PREFIX):]
    if name not in names():
        raise ConfigError(f"unknown keras.applications network '{name}': use one of "
                          f"{', '.join(names())}")
    if weights is not None and not os.path.isfile(weights):
        raise ConfigError(f"--weights {weights}: no such file (a local weights file of "
                          f"{name} without its top; tfmeta never downloads weights)")
    build = getattr(keras.applications, name)
    module = build.__module__.rsplit(".", 1)[-1]
    height, width, channels = input_shape
    try:  # three channels, as the pretrained networks have (gray images are repeated)
        network = build(include_top=False, weights=None, input_shape=(height, width, 3),
                        pooling=None if output == "feature_maps" else "avg")
    except ValueError as err:  # e.g. inputs smaller than the network's minimum
        raise ConfigError(f"{name} cannot take {height}x{width}x{channels} images: "
                          f"{str(err).splitlines()[0]}") from None
    if weights is not None:
        try:
            network.load_weights(weights)
        except (ValueError, OSError, KeyError) as err:
            raise ConfigError(f"--weights {weights}: not weights of {name} without its top "
                              f"({str(err).splitlines()[0]})") from None
    network.trainable = not freeze
    inputs = keras.Input(input_shape, name="images")
    x = ApplicationInput(MODES.get(module, "raw"), name="application_input")(inputs)
    x = network(x)
    if output == "logits":
        x = keras.layers.Dense(ways, name="head")(x)
    return keras.Model(inputs, x, name=name.lower())


def smallest_input(spec: str) -> int | None:
    """The smallest image size ``keras_applications:NAME`` takes (Keras says it when asked for
    less), or ``None`` if it says nothing."""
    import re

    name = spec[len(PREFIX):]
    if name not in names():
        return None
    try:
        getattr(keras.applications, name)(include_top=False, weights=None,
                                          input_shape=(8, 8, 3))
    except ValueError as err:
        found = re.search(r"at least (\d+)", str(err))
        return int(found.group(1)) if found else None
    return None
