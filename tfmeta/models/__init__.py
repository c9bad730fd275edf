"""Backbones. Learners accept any Keras model; these are the field's standard ones."""

from tfmeta.errors import ConfigError
from tfmeta.models.applications import PREFIX as APPLICATIONS, application_backbone
from tfmeta.models.conv4 import conv4
from tfmeta.models.resnet12 import DropBlock, resnet12

__all__ = ["BACKBONES", "DropBlock", "application_backbone", "build_model", "check_backbone",
           "conv4", "resnet12"]

BACKBONES = ("conv4", "resnet12")
OUTPUTS = ("logits", "features", "feature_maps")


def build_model(name: str, input_shape, output: str = "features", ways: int | None = None,
                width: int = 64, dropout: float = 0.0, weights: str | None = None,
                freeze: bool = False):
    """Backbone ``name`` (``conv4``, ``resnet12``, ``keras_applications:NAME``) for images of ``input_shape``, ending as a
    learner asks (``Learner.backbone_output``):

    * ``"logits"``: a linear classifier head of ``ways`` units (MAML family);
    * ``"features"``: flattened feature vectors (metric learners);
    * ``"feature_maps"``: spatial feature maps (Relation Networks; conv4 then pools only its
      first two blocks, as that paper's network does).

    ``width`` scales the filters (conv4: filters per layer; resnet12: the first block's, 64 in the
    paper, the others in proportion 64-160-320-640). ``dropout`` regularises while meta-training
    (0: off, the papers' networks): conv4 ends each block with ``Dropout`` of that rate, resnet12
    puts DropBlock of that rate on its last two blocks (MetaOptNet's 0.1). A
    ``keras_applications:NAME`` network (:mod:`tfmeta.models.applications`) takes ``weights``, a
    local file of pretrained weights, and ``freeze`` (its weights stay fixed); ``width`` and
    ``dropout`` are for the built-in networks."""
    check_backbone(name, width, dropout, weights, freeze)
    if output not in OUTPUTS:
        raise ConfigError(f"backbone output must be one of {', '.join(OUTPUTS)}, got {output!r}")
    if output == "logits" and not ways:
        raise ConfigError("a logits backbone needs the number of ways")
    if name.startswith(APPLICATIONS):
        return application_backbone(name, input_shape, output, ways, weights, freeze)
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
    if not isinstance(name, str) or not (name in BACKBONES or name.startswith(APPLICATIONS)):
        raise ConfigError(f"unknown model {name!r}: use {', '.join(BACKBONES)} or "
                          f"{APPLICATIONS}NAME (a keras.applications network)")
    if not 0 <= dropout < 1:
        raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
    if width < 1:
        raise ConfigError(f"width must be positive, got {width}")
    if name.startswith(APPLICATIONS):
        if dropout:
            raise ConfigError(f"dropout is for the built-in backbones ({', '.join(BACKBONES)}), "
                              f"not {name}")
    elif weights is not None or freeze:
        raise ConfigError(f"pretrained weights and freezing are for {APPLICATIONS}NAME "
                          f"backbones; {name} starts from random weights")


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
