"""Backbones. Learners accept any Keras model; these are the field's standard ones."""

from tfmeta.models.conv4 import conv4

__all__ = ["conv4", "build_model"]


def build_model(name: str, input_shape, outputs, **kwargs):
    """A backbone by name (``conv4``), with a linear head of ``outputs`` units (``None``: none)."""
    if name == "conv4":
        return conv4(input_shape, outputs=outputs, **kwargs)
    raise ValueError(f"unknown model '{name}': use conv4")
