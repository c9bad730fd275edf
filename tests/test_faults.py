"""Faults during meta-training: a non-finite meta-loss never reaches a checkpoint (skipped or
stopping the run, as configured), SIGINT / SIGTERM finish the step, save and stop, and a second
process on a run directory is refused while the first holds it."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tfmeta.data import DataConfig, EpisodeConfig
from tfmeta.errors import TrainingStopped
from tfmeta.run import RunConfig, TrainConfig


class Faulty:
    """An episode sampler that hands out the real meta-batches, except that meta-batch
    ``nan_at`` (0-based, counted from the run's first step) has NaN support images, meta-batch
    ``overflow_at`` support images scaled by 1e30 (the loss stays finite while BatchNorm's moving
    variance overflows), and that handing out meta-batch ``signal_at`` sends this process
    ``signal_number``."""

    def __init__(self, sampler, nan_at=None, overflow_at=None, signal_at=None,
                 signal_number=signal.SIGINT):
        self.sampler, self.meta_batch = sampler, sampler.meta_batch
        self.nan_at, self.overflow_at = nan_at, overflow_at
        self.signal_at, self.signal_number = signal_at, signal_number

    def dataset(self, start=0, num_batches=None):
        for i, batch in enumerate(self.sampler.dataset(start, num_batches), start):
            if i == self.signal_at:
                os.kill(os.getpid(), self.signal_number)
            if i in (self.nan_at, self.overflow_at):
                batch = (batch[0] * (np.nan if i == self.nan_at else 1e30), *batch[1:])
            yield batch


def _trainer(out, on_nonfinite="skip", strategy=None, chief=True, **faults):
    from tfmeta.data import load_splits
    from tfmeta.run import build_learner, samplers, trainer_for

    config = RunConfig(algorithm="protonet", data=DataConfig("glyphs"),
                       episode=EpisodeConfig(3, 1, 2), width=4,
                       train=TrainConfig(steps=5, meta_batch=2, val_every=100, val_episodes=2,
                                         checkpoint_every=1, on_nonfinite=on_nonfinite))
    streams = samplers(config, load_splits(config.data))
    learner = build_learner(config, streams["train"].image_shape, strategy=strategy)
    trainer = trainer_for(config, learner, streams, str(out), progress=False, chief=chief)
    trainer.train_sampler = Faulty(streams["train"], **faults)
    return trainer


def _checkpoint(out):
    path = tf.train.latest_checkpoint(os.path.join(out, "checkpoints", "latest"))
    reader = tf.train.load_checkpoint(path)
    values = {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
              if "CHECKPOINTABLE" not in k}
    return int(reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE")), values


def nonfinite_result(stdout: str) -> dict:
    """The JSON line of tests/nonfinite_check.py, checked: each bad meta-batch was skipped and
    left every variable as it was, the run counted both, and no checkpoint holds a NaN or Inf."""
    result = json.loads([x for x in stdout.splitlines() if x.startswith("{")][-1])
    assert result["nan_skipped"] == result["overflow_skipped"] == 1.0, result
    assert result["nan_unchanged"] and result["overflow_unchanged"], result
    assert result["step"] == 5 and result["skipped"] == 2, result
    return result


@pytest.mark.parametrize("strategy", ["default", "mirrored"])
def test_nonfinite_meta_batches_are_skipped_whole_and_never_checkpointed(tmp_path, strategy):
    """NaN images (the loss stays finite: ReLU maps NaN to 0) and images scaled by 1e30 (the loss
    stays finite while BatchNorm's moving variance overflows), on one device and under a
    MirroredStrategy of 2 logical CPUs (where the guard used to be bypassed)."""
    r = subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__),
                                                     "nonfinite_check.py"), strategy,
                        str(tmp_path / "run")], capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert r.returncode == 0, r.stderr[-3000:]
    result = nonfinite_result(r.stdout)
    assert result["replicas"] == (2 if strategy == "mirrored" else 1)
    assert result["checkpoints_finite"] == [True] * 3, result  # latest (2 kept) and best


def _learner_state(learner) -> list:
    return [np.array(v.numpy()) for v in [*learner.model.variables, *learner.optimizer.variables]]


def test_an_update_that_would_overflow_the_optimizer_is_rolled_back(tmp_path):
    """Finite gradients of 1e20: Adam's second moment (g squared) overflows to Inf while the
    weights stay finite, a state no pre-update check sees; the step is undone whole."""
    trainer = _trainer(tmp_path)
    learner = trainer.learner
    before = _learner_state(learner)
    snapshot = learner._snapshot()
    huge = [tf.fill(tf.shape(v), 1e20) for v in learner.meta_variables]
    metrics = learner._update_if_finite(snapshot, huge, tf.ones([2]), tf.ones([2]))
    assert float(metrics["skipped"]) == 1.0
    for a, b in zip(before, _learner_state(learner)):
        np.testing.assert_array_equal(a, b)
    ordinary = [tf.fill(tf.shape(v), 1e-3) for v in learner.meta_variables]
    metrics = learner._update_if_finite(learner._snapshot(), ordinary, tf.ones([2]),
                                        tf.ones([2]))
    assert float(metrics["skipped"]) == 0.0 and int(learner.optimizer.iterations) == 1


def test_a_nonfinite_state_is_never_saved_nor_loaded(tmp_path):
    from tfmeta.errors import DataError
    from tfmeta.run import restore

    trainer = _trainer(tmp_path / "run")
    trainer.fit(until=2)
    variable = trainer.learner.model.non_trainable_variables[-1]  # a moving variance
    variable.assign(variable * np.inf)
    with pytest.raises(TrainingStopped, match=rf"the state at step 3 holds non-finite values "
                                              rf"\({variable.path}\); it was not saved: the "
                                              r"latest checkpoint \(.*ckpt-2\) is the last good"):
        trainer._save(trainer.latest, 3)
    assert _checkpoint(tmp_path / "run")[0] == 2
    # A checkpoint that holds it (written behind tfmeta's back) is refused in one line naming it.
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(step=tf.Variable(3, dtype=tf.int64),
                            best_accuracy=tf.Variable(0.5, dtype=tf.float64),
                            **trainer.learner.checkpoint_items()),
        str(tmp_path / "bad" / "checkpoints" / "best"), max_to_keep=1)
    path = manager.save(checkpoint_number=3)
    with pytest.raises(DataError, match=rf"^{path}: holds non-finite values \(model/.*\); it "
                                        r"was not loaded: use an earlier checkpoint") as err:
        restore(trainer.learner, str(tmp_path / "bad"))
    assert "\n" not in str(err.value)


def test_on_nonfinite_stop_keeps_the_last_good_checkpoint(tmp_path):
    with pytest.raises(TrainingStopped, match=r"non-finite meta-loss or meta-gradient at step 3 "
                                              r".*ckpt-2\) is the last good state"):
        _trainer(tmp_path, on_nonfinite="stop", nan_at=2).fit()
    step, values = _checkpoint(tmp_path)
    assert step == 2 and all(np.all(np.isfinite(v)) for v in values.values()
                             if np.issubdtype(np.asarray(v).dtype, np.floating))


def test_sigint_finishes_the_step_saves_and_stops(tmp_path):
    trainer = _trainer(tmp_path, signal_at=2)
    before = signal.getsignal(signal.SIGINT)  # the default, or SIG_IGN in a background job
    with pytest.raises(TrainingStopped, match="stopped by SIGINT after step 3; saved") as err:
        trainer.fit()
    assert err.value.signal == signal.SIGINT
    assert _checkpoint(tmp_path)[0] == 3 == int(trainer.step.numpy())
    assert signal.getsignal(signal.SIGINT) is before  # handlers restored


def test_second_process_is_refused_and_sigterm_saves(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "tfmeta", "train", "--algorithm", "protonet", "--dataset",
               "glyphs", "--width", "4", "--meta-batch", "2", "--steps", "100000",
               "--val-every", "100000", "--checkpoint-every", "100000", "--no-progress",
               "--out", str(out)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    deadline = time.time() + 300
    while not (out / "tensorboard").exists():  # the first step is under way
        assert time.time() < deadline and first.poll() is None, first.communicate()[1][-2000:]
        time.sleep(0.2)
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 2
    assert second.stderr.strip().splitlines()[-1] == (
        f"tfmeta: error: {out} is in use by another tfmeta process (pid {first.pid}); wait for "
        "it to finish or use another --out")
    time.sleep(1)
    first.send_signal(signal.SIGTERM)
    _, stderr = first.communicate(timeout=120)
    assert first.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    message = stderr.strip().splitlines()[-1]
    assert message.startswith("tfmeta: stopped: stopped by SIGTERM after step "), message
    step = int(message.split("after step ")[1].split(";")[0])
    assert step >= 1 and _checkpoint(out)[0] == step  # nothing lost


FULL_DISK = """
import resource, signal, sys
sys.path.insert(0, {tests!r})
from test_faults import _trainer
from tfmeta.errors import TrainingStopped
trainer = _trainer({out!r})
trainer.fit(until=2)
# Every file written from now on may hold 64 bytes at most: the next checkpoint's data file
# cannot be written, as on a full disk (EFBIG instead of ENOSPC; SIGXFSZ ignored).
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (64, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
for part in ("logs", "checkpoint"):
    if part == "checkpoint":  # TensorBoard logs elsewhere: the checkpoint is the first write
        import tensorflow as tf
        tf.summary.create_file_writer = lambda *_: tf.summary.create_noop_writer()
    try:
        trainer.fit()
    except TrainingStopped as err:
        print("STOPPED", err)
"""


def test_a_failed_checkpoint_write_is_one_line_and_keeps_the_previous_checkpoint(tmp_path):
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-c", FULL_DISK.format(
        tests=os.path.dirname(__file__), out=str(out))], capture_output=True, text=True,
        timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert r.returncode == 0, r.stderr[-2000:]
    logs, checkpoint = [x for x in r.stdout.splitlines() if x.startswith("STOPPED")]
    assert logs.startswith(f"STOPPED could not write TensorBoard logs to {out} (File too "
                           "large); the previous checkpoint ("), logs
    assert checkpoint.startswith("STOPPED could not write the checkpoint of step 3 to "), checkpoint
    for line in (logs, checkpoint):
        assert line.endswith("ckpt-2) is intact: free some space and run the same command to "
                             "resume"), line
    step, values = _checkpoint(out)
    assert step == 2 and len(values) > 10  # readable, complete


@pytest.mark.parametrize("damage", ["truncate", "garble"])
def test_a_damaged_checkpoint_is_one_line(tmp_path, damage):
    from tfmeta.errors import DataError
    from tfmeta.run import restore

    trainer = _trainer(tmp_path)
    trainer.fit(until=2)
    folder = tmp_path / "checkpoints" / "latest"
    data = next(folder.glob("ckpt-2.data-*"))
    index = folder / "ckpt-2.index"
    if damage == "truncate":  # a copy cut short
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    else:  # tampered: the index no longer describes the data
        index.write_bytes(bytes(reversed(index.read_bytes())))
    for attempt in (lambda: _trainer(tmp_path).restore(),
                    lambda: restore(_trainer(tmp_path).learner, str(tmp_path), "latest")):
        with pytest.raises(DataError, match=r"ckpt-2: a damaged checkpoint, or one of another "
                                            r"model \(.*\); restore the run directory") as err:
            attempt()
        assert "\n" not in str(err.value)
