"""What a run ran on (versions, devices, the distribution, op determinism), recorded in its
``environment.json`` beside ``run.json``; ``tfmeta info`` prints the same versions."""

from __future__ import annotations

import importlib.metadata
import platform

PACKAGES = ("tfmeta", "tensorflow", "keras", "tensorflow-datasets", "numpy", "protobuf",
            "tf2onnx", "onnxruntime")


def package_version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def environment(strategy=None) -> dict:
    """What a run ran on, recorded in its ``environment.json``: versions, devices, the
    distribution and whether TensorFlow's ops were deterministic."""
    import tensorflow as tf

    return {"python": platform.python_version(), "platform": platform.platform(),
            "versions": {p: package_version(p) for p in PACKAGES},
            "devices": [d.name for d in tf.config.list_logical_devices()],
            "replicas": strategy.num_replicas_in_sync if strategy is not None else 1,
            "strategy": type(strategy).__name__ if strategy is not None else "default",
            "deterministic_ops": _op_determinism()}


def _op_determinism() -> bool:
    # TensorFlow has a public setter (tf.config.experimental.enable_op_determinism) and no
    # public getter.
    from tensorflow.python.framework import config

    return bool(config.is_op_determinism_enabled())
