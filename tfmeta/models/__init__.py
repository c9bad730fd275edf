"""Backbones. Learners accept any Keras model; these are the field's standard ones."""

from tfmeta.models.conv4 import conv4
from tfmeta.models.resnet12 import DropBlock, resnet12

__all__ = ["DropBlock", "build_model", "conv4", "resnet12"]


def build_model(name: str, input_shape, outputs, **kwargs):
    """A backbone by name (``conv4``, ``resnet12``), with a linear head of ``outputs`` units
    (``None``: none). ``width`` scales the filters (conv4: filters per layer; resnet12: the first
    block's, 64 in the paper, the others in proportion 64-160-320-640)."""
    width = kwargs.pop("width", 64)
    if name == "conv4":
        return conv4(input_shape, outputs=outputs, width=width, **kwargs)
    if name == "resnet12":
        widths = tuple(int(round(width * f)) for f in (1, 2.5, 5, 10))
        if kwargs.pop("flatten", True) is False:  # a learner asks for feature maps
            kwargs["pooling"] = "none"
        kwargs.pop("pooled_blocks", None)  # ResNet-12 keeps its four pools
        return resnet12(input_shape, outputs=outputs, widths=widths, **kwargs)
    raise ValueError(f"unknown model '{name}': use conv4 or resnet12")
