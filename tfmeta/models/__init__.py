"""Backbones. Learners accept any Keras model; these are the field's standard ones."""

import os

from tfmeta.errors import ConfigError
from tfmeta.models.applications import PREFIX as APPLICATIONS, application_backbone, smallest_input
from tfmeta.models.conv4 import conv4
from tfmeta.models.hub import PREFIX as KERAS_HUB, hub_backbone
from tfmeta.models.resnet12 import DropBlock, resnet12

__all__ = ["BACKBONES", "DropBlock", "KERAS_FILE", "KERAS_HUB", "application_backbone",
           "build_model", "check_backbone", "conv4", "file_backbone", "hub_backbone", "resnet12"]

BACKBONES = ("conv4", "resnet12")
KERAS_FILE = "keras_file:"  # a user's own saved Keras model (images -> features)
OUTPUTS = ("logits", "features", "feature_maps")


def build_model(name: str, input_shape, output: str = "features", ways: int | None = None,
                width: int = 64, dropout: float = 0.0, weights: str | None = None,
                freeze: bool = False):
    """Backbone ``name`` (``conv4``, ``resnet12``, ``keras_applications:NAME``,
    ``keras_file:PATH``, ``keras_hub:DIR``) for images of ``input_shape``, ending as a learner
    asks (``Learner.backbone_output``):

    * ``"logits"``: a linear classifier head of ``ways`` units (MAML family);
    * ``"features"``: flattened feature vectors (metric learners);
    * ``"feature_maps"``: spatial feature maps (Relation Networks; conv4 then pools only its
      first two blocks, as that paper's network does).

    ``width`` scales the filters (conv4: filters per layer; resnet12: the first block's, 64 in the
    paper, the others in proportion 64-160-320-640). ``dropout`` regularises while meta-training
    (0: off, the papers' networks): conv4 ends each block with ``Dropout`` of that rate, resnet12
    puts DropBlock of that rate on its last two blocks (MetaOptNet's 0.1). A
    ``keras_applications:NAME`` network (:mod:`tfmeta.models.applications`) takes ``weights``, a
    local file of pretrained weights, and ``freeze`` (its weights stay fixed), as does a
    ``keras_file:PATH`` model (:func:`file_backbone`; its weights are in the file) and a
    ``keras_hub:DIR`` preset folder (:mod:`tfmeta.models.hub`) take ``freeze``; ``width`` and
    ``dropout`` are for the built-in networks."""
    check_backbone(name, width, dropout, weights, freeze)
    if output not in OUTPUTS:
        raise ConfigError(f"backbone output must be one of {', '.join(OUTPUTS)}, got {output!r}")
    if output == "logits" and not ways:
        raise ConfigError("a logits backbone needs the number of ways")
    if name.startswith(APPLICATIONS):
        return application_backbone(name, input_shape, output, ways, weights, freeze)
    if name.startswith(KERAS_FILE):
        return file_backbone(name[len(KERAS_FILE):], input_shape, output, ways, freeze)
    if name.startswith(KERAS_HUB):
        return hub_backbone(name, input_shape, output, ways, freeze)
    outputs = ways if output == "logits" else None
    maps = output == "feature_maps"
    if name == "conv4":
        return conv4(input_shape, outputs=outputs, width=width, flatten=not maps,
                     pooled_blocks=2 if maps else None, dropout=dropout)
    if name == "resnet12":
        widths = tuple(int(round(width * f)) for f in (1, 2.5, 5, 10))
        return resnet12(input_shape, outputs=outputs, widths=widths, dropblock=dropout,
                        pooling="none" if maps else "avg")
    raise ConfigError(f"unknown model '{name}': use {' or '.join(BACKBONES)}")


def check_backbone(name: str, width: int = 64, dropout: float = 0.0, weights: str | None = None,
                   freeze: bool = False) -> None:
    """One clear error if backbone ``name`` or its settings are not valid (before a run starts);
    the network of ``keras_applications:NAME`` is checked when it is built."""
    if not isinstance(name, str) or not (name in BACKBONES or name.startswith(
            (APPLICATIONS, KERAS_FILE, KERAS_HUB))):
        raise ConfigError(f"unknown model {name!r}: use {', '.join(BACKBONES)}, "
                          f"{APPLICATIONS}NAME (a keras.applications network), "
                          f"{KERAS_FILE}PATH (your own saved Keras model) or "
                          f"{KERAS_HUB}DIR (a KerasHub preset saved in a folder)")
    if not 0 <= dropout < 1:
        raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
    if width < 1:
        raise ConfigError(f"width must be positive, got {width}")
    if name.startswith((APPLICATIONS, KERAS_FILE, KERAS_HUB)):
        if dropout:
            raise ConfigError(f"dropout is for the built-in backbones ({', '.join(BACKBONES)}), "
                              f"not {name}")
        if weights is not None and name.startswith(KERAS_FILE):
            raise ConfigError(f"{name}: the .keras file holds its weights; leave out --weights")
        if weights is not None and name.startswith(KERAS_HUB):
            raise ConfigError(f"{name}: the preset folder holds its weights; leave out --weights")
    elif weights is not None or freeze:
        raise ConfigError(f"pretrained weights and freezing are for {APPLICATIONS}NAME, "
                          f"{KERAS_FILE}PATH and {KERAS_HUB}DIR backbones; {name} starts from "
                          "random weights")


def file_backbone(path: str, input_shape, output: str = "features", ways: int | None = None,
                  freeze: bool = False):
    """A user's saved Keras model (``.keras``: images ``input_shape`` in [0, 1] -> features or
    feature maps) as a backbone, its weights the starting point (``freeze``: kept fixed), ending
    as :func:`build_model` says (a ``ways``-unit head added for ``logits``, maps flattened for
    ``features``). Loaded with Keras' safe mode: no code from the file runs."""
    import keras

    if not os.path.isfile(path):
        raise ConfigError(f"{KERAS_FILE}{path}: no such file")
    try:
        network = keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as err:  # Keras raises several types for a file it cannot read
        raise ConfigError(f"{KERAS_FILE}{path}: not a Keras model file "
                          f"({str(err).strip().splitlines()[0][:200]})") from None
    expected = tuple(network.inputs[0].shape[1:])
    if expected != tuple(input_shape):
        raise ConfigError(f"{KERAS_FILE}{path} takes images of shape {expected}, the data are "
                          f"{tuple(input_shape)}: set --image-size / --channels to match")
    if output == "feature_maps" and len(network.outputs[0].shape) != 4:
        raise ConfigError(f"{KERAS_FILE}{path} gives {network.outputs[0].shape}: this learner "
                          "needs feature maps [batch, height, width, channels]")
    network.trainable = not freeze
    inputs = keras.Input(input_shape, name="images")
    x = network(inputs)
    if output != "feature_maps" and len(x.shape) > 2:
        x = keras.layers.Flatten(name="flatten")(x)
    if output == "logits":
        x = keras.layers.Dense(ways, name="head")(x)
    return keras.Model(inputs, x, name="backbone")


def nested_layers(layer) -> list:
    """Every layer inside ``layer`` (a model or a layer with sublayers), depth first, each once:
    the layers of models and of nested models, and sublayers held in attributes (lists, tuples
    and dicts of them too), found with public attributes only."""
    import keras

    found, seen = [], {id(layer)}

    def children(node):
        values = list(node.layers) if isinstance(node, keras.Model) else []
        for value in vars(node).values():
            if isinstance(value, dict):
                value = list(value.values())
            values.extend(value if isinstance(value, (list, tuple)) else [value])
        return [v for v in values if isinstance(v, keras.layers.Layer)]

    def visit(node):
        for child in children(node):
            if id(child) not in seen:
                seen.add(id(child))
                found.append(child)
                visit(child)

    visit(layer)
    return found
