"""One config tree: presets, config files (Python, JSON, YAML, a run's run.json), overrides, the
printed tree, and a CLI that answers --help without TensorFlow."""

import json
import subprocess
import sys
import time

import pytest

from tfmeta.configs import load, names
from tfmeta.errors import ConfigError
from tfmeta.learners import ALGORITHMS
from tfmeta.run import RunConfig


def test_every_preset_is_valid_and_cites_its_source():
    import importlib

    assert {"quickstart", "maml_omniglot", "protonet_omniglot", "reptile_omniglot"} <= set(names())
    for name in names():
        config = load(name).validate()
        assert config.algorithm in ALGORITHMS
        doc = importlib.import_module(f"tfmeta.configs.{name}").__doc__
        assert f"--config {name}" in doc, name  # the command that runs it
    assert load("protonet_omniglot").train_ways == 60  # trains wider than it tests, as the paper


def test_yaml_python_and_json_configs_give_the_same_tree(tmp_path):
    (tmp_path / "c.yaml").write_text("algorithm: protonet\nepisode: {ways: 3, queries: 4}\n"
                                     "learner:\n  distance: cosine\ntrain:\n  steps: 7\n")
    (tmp_path / "c.py").write_text(
        "from tfmeta.data import EpisodeConfig\nfrom tfmeta.run import RunConfig, TrainConfig\n"
        "def config():\n    return RunConfig(algorithm='protonet', episode=EpisodeConfig(3, 1, 4),"
        " learner={'distance': 'cosine'}, train=TrainConfig(steps=7))\n")
    from_yaml, from_python = load(str(tmp_path / "c.yaml")), load(str(tmp_path / "c.py"))
    assert from_yaml == from_python
    (tmp_path / "c.json").write_text(json.dumps(from_yaml.resolved().to_dict()))
    assert load(str(tmp_path / "c.json")).resolved() == from_yaml.resolved()
    assert from_yaml.with_settings(["episode.ways=5", "learner.cosine_scale=3"]).episode.ways == 5


@pytest.mark.parametrize("text, message", [
    ("algorithm: protonet\nepisode: {wayz: 3}\n", "unknown setting episode.wayz"),
    ("train:\n  steps: fast\n", "train.steps='fast': expected int"),
    ("learner: 5\n", "learner must be a mapping"),
    ("- a\n- b\n", "expected a mapping of settings"),
])
def test_a_bad_config_file_is_one_clear_error_naming_the_file(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        load(str(path)).validate()
    assert "bad.yaml" in str(err.value) or "learner" in message


def test_a_misspelled_option_is_an_error_in_python_too():
    from tfmeta.learners import create, make_config

    with pytest.raises(ConfigError, match="maml has no option inner_stpes; its options: "
                                          "inner_steps, inner_lr"):
        create("maml", inner_stpes=5)
    with pytest.raises(ConfigError, match="learner.inner_lr='x': expected float"):
        make_config("maml", inner_lr="x")
    with pytest.raises(ConfigError, match="fomaml fixes first_order=True"):
        make_config("fomaml", first_order=False)
    with pytest.raises(ConfigError, match="unknown setting learner.a.b"):
        RunConfig().with_values({"learner.a.b": 1})


def test_print_config_shows_the_resolved_tree_and_replays(tmp_path):
    from tfmeta.cli import main

    r = subprocess.run([sys.executable, "-m", "tfmeta", "train", "--config", "quickstart",
                        "--ways", "3", "--set", "learner.test_inner_steps=5", "--print-config"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    tree = json.loads(r.stdout)
    assert tree["episode"]["ways"] == 3 and tree["train"]["meta_batch"] == 8
    assert tree["learner"] == {"inner_steps": 1, "inner_lr": 0.4, "first_order": False,
                               "test_inner_steps": 5, "inner_reduction": "mean",
                               "recompute_inner": False, "test_inner_lr": None,
                               "prototype_head": "off"}  # every option, defaults included
    (tmp_path / "tree.json").write_text(r.stdout)
    assert load(str(tmp_path / "tree.json")).resolved().to_dict() == tree
    assert main(["train", "--config", str(tmp_path / "missing.json")]) == 2


def test_help_and_version_answer_without_tensorflow():
    code = ("import sys, time; t = time.time(); from tfmeta.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'tensorflow' not in sys.modules, 'TensorFlow imported'\n"
            "print(time.time() - t)")
    began = time.time()
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "usage: tfmeta" in r.stdout and float(r.stdout.splitlines()[-1]) < 1.0
    assert time.time() - began < 10
    r = subprocess.run([sys.executable, "-m", "tfmeta", "--version"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("tfmeta ") and not r.stderr


def test_commands_start_quietly_unless_verbose(tmp_path):
    """No TensorFlow / absl start-up line (``I0000 ...``, ``E0000 ... failed call to cuInit``,
    absl's notice) on stderr before a command's own line; ``--verbose`` shows them again."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    command = [sys.executable, "-m", "tfmeta", "evaluate", "--checkpoint",
               str(tmp_path / "missing")]
    quiet = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert quiet.returncode == 2
    assert quiet.stderr.splitlines() == [
        f"tfmeta: error: {tmp_path / 'missing'}: not a tfmeta run (run.json missing)"], (
        quiet.stderr)
    verbose = subprocess.run(command + ["--verbose"], capture_output=True, text=True,
                             timeout=120, env=env)
    assert verbose.returncode == 2 and "I0000" in verbose.stderr  # what is hidden otherwise
    assert verbose.stderr.splitlines()[-1] == quiet.stderr.splitlines()[-1]
    info = subprocess.run([sys.executable, "-m", "tfmeta", "info"], capture_output=True,
                          text=True, timeout=120, env=env)
    assert info.returncode == 0 and "tensorflow" in info.stdout and info.stderr == "", info.stderr


def test_info_lists_versions_presets_learners_and_offline_datasets(capsys):
    from tfmeta.cli import main

    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for needle in ("tensorflow", "keras", "devices: ", "glyphs cache:", "quickstart", "fomaml",
                   "datasets offline:"):
        assert needle in out, needle


def test_load_does_not_reset_the_callers_random_seeds(tmp_path):
    import numpy as np

    from tfmeta.data import EpisodeConfig
    from tfmeta.run import TrainConfig, load as load_run, train

    out = str(tmp_path / "run")
    train(RunConfig(algorithm="protonet", episode=EpisodeConfig(3, 1, 2), width=8,
                    train=TrainConfig(steps=2, meta_batch=2, val_every=2, val_episodes=2,
                                      test_episodes=2, checkpoint_every=2, seed=0)),
          out, progress=False, log=lambda *_: None)
    np.random.seed(123)
    load_run(out)
    after = np.random.random()
    np.random.seed(123)
    assert after == np.random.random()  # load() used to call keras.utils.set_random_seed


def test_cosine_schedule_follows_its_formula_and_reptile_refuses_it():
    import math

    from tfmeta.errors import ConfigError
    from tfmeta.run import TrainConfig, build_learner

    config = RunConfig(algorithm="protonet", train=TrainConfig(steps=200, lr_schedule="cosine",
                                                               outer_lr=0.002))
    optimizer = build_learner(config, (28, 28, 1)).optimizer
    for step in (0, 50, 200):
        optimizer.iterations.assign(step)
        expected = 0.002 * 0.5 * (1 + math.cos(math.pi * step / 200))
        assert float(optimizer.learning_rate) == pytest.approx(expected, abs=1e-7)
    with pytest.raises(ConfigError, match="anneals its outer step"):
        RunConfig(algorithm="reptile", train=TrainConfig(lr_schedule="cosine")).validate()
    with pytest.raises(ConfigError, match="lr_schedule must be one of"):
        RunConfig().with_settings(["train.lr_schedule=step"])


def test_the_cli_flags_are_built_from_the_config_tree():
    """Every field of the tree (and of every learner's config) that names a flag has it, with its
    help and default from the field; no learner name or learner option is written in the CLI."""
    import dataclasses
    import pathlib

    from tfmeta.cli import build_parser
    from tfmeta.commands import SETTING, setting_fields

    train = build_parser("train")._subparsers._group_actions[0].choices["train"]
    by_flag = {a.option_strings[0]: a for a in train._actions if a.option_strings}
    wanted = 0
    for prefix, cls in setting_fields():
        for field in dataclasses.fields(cls):
            flag = field.metadata.get("flag")
            if flag:
                wanted += 1
                action = by_flag[f"--{flag}"]
                assert action.dest == SETTING + prefix + field.name, flag
                assert field.metadata["help"] in action.help, flag
    assert wanted >= 35 and "--inner-lr" in by_flag and "--fce" in by_flag
    assert "(default 2000;" in by_flag["--steps"].help  # TrainConfig.steps' default, said once
    source = "".join(pathlib.Path(f"tfmeta/{name}.py").read_text()
                     for name in ("cli", "commands", "export_commands"))
    for name in ALGORITHMS:
        assert f'"{name}"' not in source, name
    for option in ("inner_lr", "inner_steps", "fce", "first_order"):
        assert option not in source, option


def test_settings_that_need_another_are_refused_apart_and_old_flag_names_warn(tmp_path, capsys):
    from tfmeta.cli import main

    assert main(["train", "--algorithm", "protonet", "--attack-epsilon", "0.1",
                 "--print-config"]) == 2
    assert "train.attack_epsilon (--attack-epsilon) needs train.adversarial (--adversarial)" in \
        capsys.readouterr().err
    assert main(["train", "--algorithm", "protonet", "--adversarial", "fgsm", "--epsilon",
                 "0.1", "--print-config"]) == 0
    out, err = capsys.readouterr()
    assert "--epsilon is deprecated" in err and "use --attack-epsilon" in err
    assert json.loads(out)["train"]["attack_epsilon"] == 0.1
    with pytest.raises(ConfigError, match="attack_steps"):
        RunConfig().with_settings(["train.attack_steps=3"]).validate()
    assert main(["evaluate", "--checkpoint", str(tmp_path), "--attack-steps", "3"]) == 2
    assert "attack_steps (--attack-steps) needs attack (--attack)" in capsys.readouterr().err


def test_each_default_is_stated_once():
    """The defaults the CLI, the config tree and the library share live in one place each: the
    protocol's 600 test episodes, the attack's 8/255 radius and 7 PGD steps, 2 parallel tasks
    (as numbers in the code, docstrings aside)."""
    import ast
    import pathlib

    numbers, sevens, twos = [], [], []
    for path in pathlib.Path("tfmeta").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value == 600:
                numbers.append(f"{path}:{node.lineno} 600")
            if isinstance(node, ast.BinOp) and ast.unparse(node) == "8 / 255":
                numbers.append(f"{path}:{node.lineno} 8/255")
            names = ([t.id for t in node.targets if isinstance(t, ast.Name)]
                     if isinstance(node, ast.Assign) else
                     [node.target.id] if isinstance(node, ast.AnnAssign) and
                     isinstance(node.target, ast.Name) else [])
            value = getattr(node, "value", None)
            for name in names:
                if isinstance(value, ast.Constant) and "steps" in name.lower() and \
                        value.value == 7:
                    sevens.append(f"{path}:{node.lineno} {name}")
                if isinstance(value, ast.Constant) and "parallel" in name.lower() and \
                        value.value == 2:
                    twos.append(f"{path}:{node.lineno} {name}")
            if isinstance(node, ast.arguments):
                pairs = [*zip(node.args[::-1], node.defaults[::-1]),
                         *zip(node.kwonlyargs, node.kw_defaults)]
                for arg, default in pairs:
                    if isinstance(default, ast.Constant) and "parallel" in arg.arg and \
                            default.value == 2:
                        twos.append(f"{path}:{default.lineno} {arg.arg}")
    assert sorted(n.split()[-1] for n in numbers) == ["600", "8/255"], numbers
    assert len(sevens) == 1 and len(twos) == 1, (sevens, twos)
