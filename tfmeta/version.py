"""tfmeta's version, in a module of its own: the package's modules read it from here, never from
``tfmeta/__init__`` (an import upward)."""

__version__ = "0.1.0"
