"""A KerasHub preset as a backbone: ``keras_hub:DIR``, DIR a preset saved on disk.

KerasHub (``pip install 'tfmeta[hub]'``) publishes pretrained image networks as presets (ResNet,
EfficientNet, MobileNet, DenseNet, ViT, DINOv2, ...) that download from Kaggle by name. tfmeta never
downloads at run time: fetch the preset where there is network and save it as a folder, e.g.
``keras_hub.models.ImageClassifier.from_preset("resnet_50_imagenet").save_to_preset("resnet50")``
(or ``kagglehub.model_download``), then ``--model keras_hub:resnet50``. The folder's backbone
(``config.json``, ``model.weights.h5``) is built with its weights; its image converter
(``image_converter.json``, which classifier presets carry) gives the input scale and offset that
pretraining used, applied to 0-255 pixel values inside the model (:class:`PresetInput`), so
every export takes the same [0, 1] images as training did. A preset without an image converter
gets the [0, 1] images as they are. The run directory keeps a copy of the folder, so
``tfmeta.load``, evaluate, adapt and export work after the original is gone.
"""

from __future__ import annotations

import os

import keras

from tfmeta.errors import ConfigError

PREFIX = "keras_hub:"
INSTALL = "pip install 'tfmeta[hub]'"


@keras.saving.register_keras_serializable(package="tfmeta")
class PresetInput(keras.layers.Layer):
    """Images in [0, 1] -> ``pixels * 255 * scale + offset`` (a KerasHub image converter's
    convention; ``scale`` and ``offset`` scalars or one per channel, ``None``: the images as they
    are), one channel repeated to ``channels``."""

    def __init__(self, scale=None, offset=None, channels: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.scale, self.offset, self.channels = scale, offset, int(channels)

    def call(self, images):
        x = keras.ops.cast(images, self.compute_dtype)
        if x.shape[-1] == 1 and self.channels != 1:
            x = keras.ops.repeat(x, self.channels, axis=-1)
        if self.scale is None and self.offset is None:
            return x
        x = x * 255.0
        if self.scale is not None:
            x = x * keras.ops.convert_to_tensor(self.scale, x.dtype)
        if self.offset is not None:
            x = x + keras.ops.convert_to_tensor(self.offset, x.dtype)
        return x

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.channels)

    def get_config(self):
        return dict(super().get_config(), scale=self.scale, offset=self.offset,
                    channels=self.channels)


def _keras_hub():
    try:
        import keras_hub
    except ImportError:
        raise ConfigError(f"keras_hub: backbones need the keras-hub package: {INSTALL}") from None
    return keras_hub


def preset_dir(spec: str) -> str:
    """The local folder of ``keras_hub:DIR``; one clear error if it is not a preset folder."""
    path = spec[len(PREFIX):]
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise ConfigError(
            f"{spec}: not a KerasHub preset folder (no {os.path.join(path, 'config.json')}); "
            "tfmeta never downloads presets: save one where there is network, e.g. keras_hub."
            "models.ImageClassifier.from_preset('resnet_50_imagenet').save_to_preset('DIR')")
    return path


def _converter(keras_hub, path):
    """``(scale, offset)`` of the preset's image converter, or ``(None, None)``."""
    if not os.path.isfile(os.path.join(path, "image_converter.json")):
        return None, None
    converter = keras_hub.layers.ImageConverter.from_preset(path)
    plain = lambda v: None if v is None else (  # noqa: E731  (JSON-able for the layer config)
        [float(x) for x in v] if hasattr(v, "__len__") else float(v))
    return plain(converter.scale), plain(converter.offset)


def hub_backbone(spec: str, input_shape, output: str = "features", ways: int | None = None,
                 freeze: bool = False) -> keras.Model:
    """``keras_hub:DIR`` for images of ``input_shape`` (values in [0, 1]), ending as
    :func:`tfmeta.models.build_model` says (``output``, ``ways``); ``freeze`` keeps the preset's
    weights fixed."""
    keras_hub = _keras_hub()
    path = preset_dir(spec)
    try:
        network = keras_hub.models.Backbone.from_preset(path)
        scale, offset = _converter(keras_hub, path)
    except Exception as err:  # KerasHub raises several types for a folder it cannot read
        raise ConfigError(f"{spec}: not a KerasHub backbone preset "
                          f"({str(err).strip().splitlines()[0][:200]})") from None
    channels = network.inputs[0].shape[-1] or input_shape[-1]
    if input_shape[-1] not in (1, channels):
        raise ConfigError(f"{spec} takes {channels}-channel images, the data have "
                          f"{input_shape[-1]}: set --channels to match")
    network.trainable = not freeze
    inputs = keras.Input(input_shape, name="images")
    x = PresetInput(scale, offset, channels, name="preset_input")(inputs)
    try:
        x = network(x)
    except Exception as err:  # e.g. images smaller than the network's downsampling
        raise ConfigError(f"{spec} cannot take {'x'.join(map(str, input_shape))} images: "
                          f"{str(err).strip().splitlines()[0][:200]}") from None
    if isinstance(x, dict):  # some backbones return several named outputs
        raise ConfigError(f"{spec}: a backbone with several outputs ({', '.join(x)}) is not an "
                          "image backbone tfmeta can use")
    if output == "feature_maps":
        if len(x.shape) != 4:
            raise ConfigError(f"{spec} gives {tuple(x.shape)}: this learner needs feature maps "
                              "[batch, height, width, channels]")
    elif len(x.shape) == 4:
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    elif len(x.shape) == 3:  # a vision transformer's tokens
        x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    if output == "logits":
        x = keras.layers.Dense(ways, name="head")(x)
    return keras.Model(inputs, x, name="backbone")
