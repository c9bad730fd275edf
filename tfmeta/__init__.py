"""tfmeta: few-shot meta-learning of image classifiers for TensorFlow / Keras.

Data flows one way: ``tfmeta.data`` (sources -> episodes) -> ``tfmeta.learners`` ->
``tfmeta.trainer`` -> ``tfmeta.evaluation`` / ``tfmeta.export``. ``tfmeta.run`` ties them into one
config, and ``tfmeta.load(run_dir)`` gives back a meta-trained learner::

    learner = tfmeta.load("runs/quickstart")
    labels = learner.predict(support_images, support_labels, query_images)
"""

from tfmeta.version import __version__  # noqa: F401


def load(run_dir: str, which: str = "best"):
    """The meta-trained learner saved in ``run_dir`` (see :func:`tfmeta.run.load`)."""
    from tfmeta.run import load as _load

    return _load(run_dir, which)


SUBPACKAGES = ("configs", "data", "errors", "export", "learners", "models", "run")


def __getattr__(name):  # `import tfmeta; tfmeta.export.saved_model(...)` without importing TF early
    import importlib

    if name in SUBPACKAGES:
        return importlib.import_module(f"tfmeta.{name}")
    if name == "MetaModel":  # a learner as a keras.Model (fit, callbacks): tfmeta.keras_model
        return importlib.import_module("tfmeta.keras_model").MetaModel
    raise AttributeError(f"module 'tfmeta' has no attribute {name!r}")


__all__ = ["__version__", "MetaModel", "load", *SUBPACKAGES]
