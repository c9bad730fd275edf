"""Run configs as code: presets beside the code, and one loader for every way to give a config.

A preset is a module here that defines ``config() -> RunConfig`` and cites its source in its
docstring (with the command that runs it). ``load(spec)`` reads a config from:

* a preset name: ``quickstart``, ``maml_omniglot``, ... (``names()`` lists them);
* a Python file that defines ``config()``;
* a JSON file (a run's ``run.json``, or the tree ``tfmeta train --print-config`` prints), or a run
  directory (its ``run.json``: replays that run);
* a YAML file with the same tree (needs PyYAML).

Then ``config.with_settings(["learner.inner_steps=5", ...])`` overrides any field.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import pkgutil

from tfmeta.errors import ConfigError


def names() -> list:
    """The presets shipped with tfmeta."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__))


def load(spec: str):
    """The ``RunConfig`` that ``spec`` names (see the module docstring)."""
    from tfmeta.run import RUN_FILE, RunConfig

    if os.path.isdir(spec):
        spec = os.path.join(spec, RUN_FILE)
    if spec.endswith(".py"):
        if not os.path.isfile(spec):
            raise ConfigError(f"{spec}: no such config file")
        module_spec = importlib.util.spec_from_file_location("tfmeta_user_config", spec)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        return _from_module(module, spec)
    if spec.endswith((".json", ".yaml", ".yml")):
        if not os.path.isfile(spec):
            raise ConfigError(f"{spec}: no such config file")
        with open(spec) as f:
            if spec.endswith(".json"):
                try:
                    tree = json.load(f)
                except json.JSONDecodeError as err:
                    raise ConfigError(f"{spec}: not valid JSON ({err})") from None
            else:
                try:
                    import yaml
                except ImportError:
                    raise ConfigError(f"{spec}: YAML configs need PyYAML (pip install pyyaml), "
                                      "or give the config as JSON") from None
                tree = yaml.safe_load(f)
        return RunConfig.from_tree(tree, where=spec)
    if spec in names():
        return _from_module(importlib.import_module(f"{__name__}.{spec}"), spec)
    raise ConfigError(f"--config {spec}: not a preset ({', '.join(names())}), a .py, .json, "
                      ".yaml file or a run directory")


def _from_module(module, where):
    from tfmeta.run import RunConfig

    if not callable(getattr(module, "config", None)):
        raise ConfigError(f"{where}: a config module must define config() -> RunConfig")
    config = module.config()
    if not isinstance(config, RunConfig):
        raise ConfigError(f"{where}: config() returned {type(config).__name__}, not a RunConfig")
    return config
