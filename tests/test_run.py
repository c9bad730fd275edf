"""Runs end to end: checkpoints, exact resume after a kill, load + predict, CLI."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from tfmeta.learners import ALGORITHMS
from tfmeta.data import DataConfig, EpisodeConfig
from tfmeta.errors import ConfigError
from tfmeta.run import RunConfig, TrainConfig, train

from learner_cases import episode_options

TINY = dict(steps=12, meta_batch=2, val_every=6, val_episodes=4, test_episodes=6,
            checkpoint_every=3)


TINY_EPISODE = EpisodeConfig(3, 1, 2)


def _tiny_options(algorithm) -> dict:
    """What tiny 3-way 1-shot 2-query episodes need (tests/learner_cases.py)."""
    return episode_options(algorithm, TINY_EPISODE)


def _tiny_config(algorithm="maml", **train_overrides):
    return RunConfig(algorithm=algorithm, data=DataConfig("glyphs"), episode=TINY_EPISODE,
                     width=8, learner=_tiny_options(algorithm),
                     train=TrainConfig(**dict(TINY, **train_overrides)))


def _cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "tfmeta", *args], capture_output=True, text=True,
                          timeout=timeout)


def _weights(learner):
    return [v.numpy() for v in learner.model.trainable_variables]


def _trainer(config, out):
    from tfmeta.data import load_splits
    from tfmeta.run import build_learner, samplers, trainer_for

    streams = samplers(config, load_splits(config.data))
    learner = build_learner(config, streams["train"].image_shape)
    return trainer_for(config, learner, streams, str(out), progress=False)


@pytest.mark.parametrize("algorithm", ["maml", "reptile", "metasgd"])
def test_resume_is_exact(tmp_path, algorithm):
    config = _tiny_config(algorithm, steps=8, val_every=4)
    straight = _trainer(config, tmp_path / "a")
    straight.fit()
    paused = _trainer(config, tmp_path / "b")
    paused.fit(until=5)  # stops with a checkpoint at step 5, between validations
    resumed = _trainer(config, tmp_path / "b")  # a fresh process would build exactly this
    assert resumed.restore() == 5
    resumed.fit()
    for x, y in zip(_weights(straight.learner), _weights(resumed.learner)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    assert int(resumed.learner.optimizer.iterations.numpy()) == 8
    assert float(resumed.best_accuracy.numpy()) == float(straight.best_accuracy.numpy())


def test_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    out = tmp_path / "run"
    args = ["train", "--steps", "100000", "--meta-batch", "2", "--ways", "3", "--queries", "2",
            "--width", "8", "--checkpoint-every", "5", "--val-every", "100000", "--no-progress",
            "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-m", "tfmeta", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    latest = out / "checkpoints" / "latest"
    deadline = time.time() + 300
    def saved_steps():
        return [int(p.name[5:-6]) for p in latest.glob("ckpt-*.index")]

    while time.time() < deadline and max(saved_steps(), default=0) < 10:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    path = tf.train.latest_checkpoint(str(latest))
    assert path is not None, "no checkpoint written before the kill"
    saved_step = int(path.rsplit("-", 1)[1])
    assert saved_step >= 10

    from tfmeta.run import load_config

    config = load_config(str(out))
    config.train.steps = saved_step + 2
    trainer = _trainer(config, out)
    assert trainer.restore() == saved_step
    assert int(trainer.learner.optimizer.iterations.numpy()) == saved_step  # optimizer state
    trainer.fit()
    assert int(trainer.step.numpy()) == saved_step + 2


def test_changed_config_in_same_directory_is_refused(tmp_path):
    train(_tiny_config(steps=3), str(tmp_path), progress=False)
    with pytest.raises(ValueError, match="another config"):
        train(_tiny_config("fomaml", steps=3), str(tmp_path), progress=False)


def test_load_and_predict_on_numpy_of_any_size(tmp_path):
    train(_tiny_config(), str(tmp_path), progress=False)
    learner = tfmeta.load(str(tmp_path))
    rng = np.random.default_rng(0)
    support = rng.integers(0, 256, (6, 40, 40, 3), dtype=np.uint8)  # RGB, bigger than training
    labels = np.array(["cat", "dog", "eel"] * 2)
    query = np.concatenate([support, support[:2]])
    predicted = learner.predict(support, labels, query)
    assert predicted.shape == (8,) and set(predicted) <= {"cat", "dog", "eel"}
    classes, probabilities = learner.predict_proba(support, labels, query)
    assert list(classes) == ["cat", "dog", "eel"]
    np.testing.assert_allclose(probabilities.sum(1), 1, atol=1e-5)
    with pytest.raises(ValueError, match="at least 2 classes"):
        learner.predict(support, ["cat"] * 6, query)
    # Evaluation settings cannot change what the model takes (before: a shape traceback)
    from tfmeta.inference import evaluate_run

    for setting, message in (("data.image_size=32", "trained on data.image_size=28; its model "
                                                    "cannot take 32"),
                             ("data.channels=3", "trained on data.channels=1")):
        with pytest.raises(ConfigError, match=message):
            evaluate_run(str(tmp_path), episodes=2, settings=[setting])


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_cli_train_and_evaluate_every_algorithm(tmp_path, capsys, algorithm):
    from tfmeta.cli import main

    out = tmp_path / "run"
    assert main(["train", "--algorithm", algorithm, "--steps", "3", "--meta-batch", "2",
                 "--ways", "3", "--queries", "2", "--width", "8", "--episodes", "6",
                 "--val-every", "3", "--val-episodes", "2", "--no-progress",
                 "--out", str(out)] + [f"--set=learner.{k}={v}" for k, v in
                                       _tiny_options(algorithm).items()]) == 0
    assert "3-way 1-shot accuracy" in capsys.readouterr().out
    assert main(["evaluate", "--checkpoint", str(out), "--episodes", "8"]) == 0
    assert json.loads((out / "evaluation.json").read_text())["episodes"] == 8


@pytest.mark.parametrize("args, message", [
    (["train", "--ways", "0"], "must be a positive integer"),
    (["train", "--algorithm", "nope"], "unknown algorithm 'nope': use anil, baseline, baseline++, fomaml"),
    (["train", "--dataset", "folder:/no/such/dir", "--out", "{tmp}/x"], "no such folder"),
    (["train", "--dataset", "bogus", "--out", "{tmp}/y"], "unknown dataset"),
    (["evaluate", "--checkpoint", "{tmp}/none"], "not a tfmeta run"),
    (["frobnicate"], "invalid choice"),
    (["train", "--algorithm", "maml", "--fce", "--out", "{tmp}/z"], "maml has no option fce"),
    # A misspelled or foreign learner option is an error, never dropped silently.
    (["train", "--set", "learner.inner_stpes=5", "--out", "{tmp}/o1"],
     "maml has no option inner_stpes; its options: inner_steps, inner_lr"),
    (["train", "--algorithm", "protonet", "--inner-steps", "3", "--out", "{tmp}/o2"],
     "protonet has no option inner_steps"),
    (["train", "--set", "train.stepz=5", "--out", "{tmp}/o3"], "unknown setting"),
    (["train", "--set", "train.steps=many", "--out", "{tmp}/o4"], "train.steps='many': expected int"),
    (["train", "--inner-lr", "fast", "--out", "{tmp}/o8"], "learner.inner_lr='fast': expected float"),
    (["train", "--config", "no_such_preset", "--out", "{tmp}/o9"], "not a preset (maml_miniimagenet, maml_omniglot"),
    (["train", "--steps", "0", "--out", "{tmp}/o10"], "train.steps must be a positive integer"),
    (["train", "--set", "learner.inner_steps", "--out", "{tmp}/o5"], "expected KEY=VALUE"),
    # Reptile's outer step is epsilon: --outer-lr is refused, not ignored.
    (["train", "--algorithm", "reptile", "--outer-lr", "0.1", "--out", "{tmp}/o6"], "epsilon"),
    (["train", "--algorithm", "reptile", "--queries", "5", "--out", "{tmp}/o7"],
     "train_shots=10"),
])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    from tfmeta.cli import main

    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if args[0] == "train" and "--dataset" not in args:  # config errors: in-process, faster
        try:
            code = main(args)
        except SystemExit as exit:  # argparse's own errors
            code = exit.code
        assert code == 2
        stderr = capsys.readouterr().err
        assert not any(tmp_path.iterdir())  # nothing written
    else:
        r = _cli(*args)
        code, stderr = r.returncode, r.stderr
    assert code == 2
    lines = [line for line in stderr.splitlines() if line.startswith("tfmeta")]
    assert len(lines) == 1 and message in lines[0], stderr
    assert "Traceback" not in stderr


def _another_value(default):
    """A valid-looking value of an option's type that differs from its default."""
    if isinstance(default, bool):
        return not default
    if isinstance(default, int):
        return default + 1
    if isinstance(default, float):
        return default * 2
    if isinstance(default, tuple):
        return list(default)
    if isinstance(default, str):
        return default
    return 3  # None: an optional count


def test_every_learner_option_round_trips_through_the_cli_and_a_config_file(tmp_path):
    """Every option of every learner: set from the CLI, written as the resolved tree (what
    run.json holds), read back with --config, and given to the learner's config unchanged."""
    from tfmeta.cli import build_parser
    from tfmeta.commands import train_config as _train_config
    from tfmeta.learners import options

    for algorithm in ALGORITHMS:
        for name, default in options(algorithm).items():
            value = _another_value(default)
            args = build_parser().parse_args(["train", "--algorithm", algorithm,
                                              "--queries", "15",
                                              f"--set=learner.{name}={json.dumps(value)}"])
            try:
                config = _train_config(args)
            except ValueError as err:  # a value another option rules out: still reached
                assert name in str(err) or "must" in str(err), (algorithm, name, err)
                continue
            path = tmp_path / f"{algorithm}-{name}.json"
            path.write_text(json.dumps(config.resolved().to_dict()))
            args = build_parser().parse_args(["train", "--config", str(path)])
            replayed = _train_config(args)
            assert getattr(replayed.learner_config(), name) == getattr(config.learner_config(),
                                                                        name), (algorithm, name)
            assert json.loads(json.dumps(replayed.resolved().learner[name])) == value, (
                algorithm, name)


def test_a_failed_start_leaves_the_run_folder_usable(tmp_path):
    """run.json is written once the run can start: a typo in --dataset does not make the
    corrected command fail with "another config"."""
    from tfmeta.cli import main

    out = str(tmp_path / "run")
    base = ["train", "--steps", "2", "--meta-batch", "2", "--ways", "3", "--queries", "2",
            "--width", "8", "--episodes", "4", "--val-every", "2", "--val-episodes", "2",
            "--no-progress", "--out", out]
    assert main(base + ["--dataset", "folder:/no/such/folder"]) == 2
    assert not os.path.exists(os.path.join(out, "run.json"))
    assert main(base) == 0
    assert json.loads(open(os.path.join(out, "run.json")).read())["train"]["steps"] == 2
    assert not [f for f in os.listdir(out) if f.startswith(".tmp")]  # atomic writes leave none


def test_prototypical_networks_train_wider_than_they_test(tmp_path):
    config = RunConfig(algorithm="protonet", episode=EpisodeConfig(3, 1, 2), train_ways=6,
                       width=8, train=TrainConfig(**dict(TINY, steps=4)))
    result = train(config, str(tmp_path / "p"), progress=False)
    assert result["ways"] == 3
    from tfmeta.data import load_splits
    from tfmeta.run import samplers

    streams = samplers(config, load_splits(config.data))
    assert streams["train"].episode.ways == 6 and streams["test"].episode.ways == 3
    with pytest.raises(ValueError, match="train_ways must equal ways"):
        train(RunConfig(algorithm="maml", episode=EpisodeConfig(3, 1, 2), train_ways=6,
                        train=TrainConfig(**TINY)), str(tmp_path / "m"), progress=False)
    assert not (tmp_path / "m").exists()  # a refused config writes nothing


def test_same_config_with_tuples_resumes_instead_of_being_refused(tmp_path):
    config = RunConfig(algorithm="snail", episode=EpisodeConfig(3, 1, 2), width=8,
                       learner={"filters": 8, "keys": (8, 8, 8)},
                       train=TrainConfig(**dict(TINY, steps=2, val_every=2)))
    train(config, str(tmp_path), progress=False)
    assert train(config, str(tmp_path), progress=False)["episodes"] == 6  # a bug refused it


def _state(learner):
    """Everything a checkpoint must restore: weights and BatchNorm statistics, the learner's own
    parts, the optimizer's step and slots."""
    parts = [v for part in learner.parts.values() for v in part.variables]
    return [np.array(v) for v in learner.model.weights + parts + learner.optimizer.variables]


# Found by this test: two SNAIL learners built one after the other in a process ended a compiled
# step apart in the last bits (amplified by Adam to 1e-3 after 40 steps). Its layers had Keras'
# automatic names, which depend on what was built before, and the names set the graph's op order
# and so the summation order of gradients. Its layers are named now (tfmeta.learners.snail).
# Two kinds of state a checkpoint holds (CI budget; test_resume_is_exact covers Meta-SGD's learned
# rates and Reptile's annealed outer SGD in process): MAML (BatchNorm statistics, Adam slots),
# SNAIL (a metric learner's BatchNorm and a stack of layers of its own, whose names once broke it).
KILLED = ("maml", "snail")


@pytest.mark.parametrize("algorithm", KILLED)
def test_sigkilled_cli_run_resumes_to_the_uninterrupted_state(tmp_path, algorithm):
    """A real `tfmeta train` killed with SIGKILL, then resumed, ends in exactly the state of an
    uninterrupted run: weights, BatchNorm statistics, learner parts, optimizer slots."""
    steps = 20
    out = tmp_path / "killed"
    options = [f"--set=learner.{k}={v}" for k, v in _tiny_options(algorithm).items()]
    # The killed process keeps TensorFlow's default threads, as this one, where the rest runs:
    # with one intra-op thread per task some kernels sum in another order, and Adam amplifies
    # last-bit differences past the tolerance below.
    options.append("--parallel-tasks=1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tfmeta", "train", "--algorithm", algorithm, "--steps", str(steps),
         "--meta-batch", "2", "--ways", "3", "--queries", "2", "--width", "8",
         "--checkpoint-every", "2", "--val-every", "100000", "--val-episodes", "2",
         "--episodes", "2", "--no-progress", "--out", str(out), *options],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    latest = out / "checkpoints" / "latest"
    deadline = time.time() + 300
    while time.time() < deadline and not (latest / "checkpoint").exists():
        time.sleep(0.02)  # the state file is written after the checkpoint's own files
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    path = tf.train.latest_checkpoint(str(latest))
    assert path is not None, "no checkpoint written before the kill"
    assert int(path.rsplit("-", 1)[1]) < steps, "the run finished before it was killed"

    from tfmeta.run import load_config

    config = load_config(str(out))
    resumed = _trainer(config, out)
    resumed.fit()
    straight = _trainer(config, tmp_path / "straight")
    straight.fit()
    assert int(resumed.step.numpy()) == int(straight.step.numpy()) == steps
    # Tolerance: TF's CPU kernels are not bit-reproducible under load, and Adam amplifies
    # last-bit gradient differences where a gradient is near zero; measured after 40 steps: up to
    # 3e-4 (ANIL, with a benchmark sharing the cores). A resume that lost the optimizer slots ends
    # 0.027 (ANIL) to 0.29 (ProtoNet) away.
    for a, b in zip(_state(straight.learner), _state(resumed.learner), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=5e-3)


def test_output_off_a_terminal_is_plain_lines_and_quiet_is_silent(tmp_path, capsys):
    """Logs go through the "tfmeta" logger: off a terminal (here, captured) progress is a plain
    line per validation, never terminal codes; --quiet prints nothing, the run is still written."""
    from tfmeta.cli import main

    base = ["train", "--steps", "4", "--meta-batch", "2", "--ways", "3", "--queries", "2",
            "--width", "8", "--episodes", "4", "--val-every", "2", "--val-episodes", "2"]
    assert main(base + ["--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "step 2/4: loss " in out and "step 4/4: loss " in out and "replay this run" in out
    assert not any(code in out for code in ("\r", "\b", "\x1b"))
    assert main(base + ["--quiet", "--out", str(tmp_path / "b")]) == 0
    assert capsys.readouterr().out == ""
    assert (tmp_path / "b" / "results.json").exists()
