"""The meta-trainer: outer loop over meta-batches, validation, checkpoints, exact resume, logs.

Layout of ``out_dir``::

    checkpoints/latest/   the last ``keep`` checkpoints (weights, optimizer state, step)
    checkpoints/best/     the checkpoint with the best validation accuracy
    tensorboard/          scalars: train/loss, train/accuracy, val/accuracy, val/ci95; images:
                          val/episode (the first validation episode, mistakes framed in red;
                          every tenth validation and the last)

Under a multi-worker strategy only the chief writes ``out_dir``; the other workers save their
checkpoints (every worker must take part in a save) to a temporary folder they delete at the end,
and resume from the chief's.

Resume is exact: the step is in the checkpoint and the episode stream is a pure function of
``(seed, episode index)``, so a resumed run sees the very meta-batches the uninterrupted run would.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
import time

import keras
import tensorflow as tf

from tfmeta.errors import TrainingStopped
from tfmeta.checkpoints import first_names, nonfinite_names, read_checkpoint  # noqa: F401
from tfmeta.evaluation import evaluate

NONFINITE = ("skip", "stop")
MAX_SKIPPED_IN_A_ROW = 10
WRITE_FAILURES = ("No space left on device", "Disk quota exceeded", "File too large",
                  "Read-only file system", "Permission denied")


class MetaTrainer:
    """Meta-trains a learner on an episode sampler.

    Args:
        learner: a :class:`tfmeta.learners.Learner`.
        train_sampler: :class:`tfmeta.data.EpisodeSampler` of training classes.
        out_dir: where checkpoints and TensorBoard logs go.
        steps: total meta-iterations (outer updates).
        val_sampler: sampler of validation classes (``None``: no validation; best = latest).
        val_every: validate every this many steps (and at the end).
        val_episodes: episodes per validation.
        checkpoint_every: save the latest checkpoint every this many steps (and at the end).
        keep: latest checkpoints to keep.
        progress: show a progress bar with loss and accuracy.
        chief: whether this process writes ``out_dir`` (``False``: a non-chief worker of a
            multi-worker strategy, :func:`tfmeta.distribute.is_chief`).
        on_nonfinite: a meta-batch whose loss, meta-gradient or new state is NaN or Inf
            (``Learner._update_if_finite``, on one device and under a strategy alike):
            ``"skip"`` it (nothing of it is kept; counted in ``skipped``, the run's log and
            results, across resumes; ``MAX_SKIPPED_IN_A_ROW`` in a row stop the run) or
            ``"stop"`` the run. Either way it never reaches a checkpoint: the run stops with
            :class:`TrainingStopped`, the latest checkpoint is the last good state. Each
            checkpoint is written only after its values are checked to be finite, and
            ``read_checkpoint`` refuses one that is not.
        callbacks: Keras callbacks (``keras.callbacks.Callback``: EarlyStopping, CSVLogger,
            TensorBoard, ModelCheckpoint with ``save_weights_only``, a user's own). Their model is
            the learner as a :class:`tfmeta.MetaModel`; an epoch is ``val_every`` meta-steps and
            ends with the validation, so epoch logs hold ``loss`` and ``accuracy`` (the epoch's
            mean meta-training figures), ``val_accuracy``, ``val_ci95`` and ``val_loss``; batch
            logs the meta-step's ``loss`` and ``accuracy``. A callback that sets
            ``model.stop_training`` (EarlyStopping) ends the run after a checkpoint of that
            step. The trainer's own checkpoints keep exact resume; a resumed run starts the
            callbacks afresh at the epoch it resumes in. One device only.

    SIGINT and SIGTERM (in the main thread) finish the current step, save the latest checkpoint
    and raise :class:`TrainingStopped`; the same command resumes.
    """

    def __init__(self, learner, train_sampler, *, out_dir: str, steps: int, val_sampler=None,
                 val_every: int = 500, val_episodes: int = 100, checkpoint_every: int = 100,
                 keep: int = 2, progress: bool = True, chief: bool = True,
                 on_nonfinite: str = "skip", callbacks=()):
        if steps < 1:
            raise ValueError(f"steps must be positive, got {steps}")
        if on_nonfinite not in NONFINITE:
            raise ValueError(f"on_nonfinite must be one of {', '.join(NONFINITE)}, got "
                             f"{on_nonfinite!r}")
        self.on_nonfinite = on_nonfinite
        self.callbacks = list(callbacks or ())
        if self.callbacks and learner.strategy is not None:
            raise ValueError("Keras callbacks run with a learner on one device; leave out the "
                             "strategy or the callbacks")
        self.learner = learner
        self.train_sampler = train_sampler
        self.val_sampler = val_sampler
        self.out_dir = out_dir
        self.steps = int(steps)
        self.val_every = max(1, int(val_every))
        self.val_episodes = int(val_episodes)
        self.checkpoint_every = max(1, int(checkpoint_every))
        self.progress = progress and chief
        self.chief = chief
        # Where this process saves: the run directory, or a non-chief worker's scratch folder.
        self.write_dir = out_dir if chief else tempfile.mkdtemp(prefix="tfmeta-worker-")
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.best_accuracy = tf.Variable(-1.0, dtype=tf.float64, trainable=False, name="best")
        # Meta-batches skipped as not finite since the run began (kept in the checkpoint).
        self.skipped = tf.Variable(0, dtype=tf.int64, trainable=False, name="skipped")
        self.checkpoint = tf.train.Checkpoint(step=self.step, best_accuracy=self.best_accuracy,
                                              skipped=self.skipped,
                                              **learner.checkpoint_items())
        self.latest = tf.train.CheckpointManager(
            self.checkpoint, os.path.join(self.write_dir, "checkpoints", "latest"),
            max_to_keep=keep)
        self.best = tf.train.CheckpointManager(
            self.checkpoint, os.path.join(self.write_dir, "checkpoints", "best"), max_to_keep=1)

    def restore(self) -> int:
        """Restore the latest checkpoint if there is one (the chief's, on every worker); returns
        the step to continue from."""
        path = tf.train.latest_checkpoint(os.path.join(self.out_dir, "checkpoints", "latest"))
        if path:
            checkpoint = self.checkpoint
            try:
                counted = tf.train.load_checkpoint(path).has_tensor(
                    "skipped/.ATTRIBUTES/VARIABLE_VALUE")
            except (tf.errors.OpError, RuntimeError, ValueError):
                counted = True  # damaged: read_checkpoint says so in one line
            if not counted:  # written before the skipped meta-batches were kept
                checkpoint = tf.train.Checkpoint(step=self.step, best_accuracy=self.best_accuracy,
                                                 **self.learner.checkpoint_items())
            read_checkpoint(checkpoint, path, exact=True)
        return int(self.step.numpy())

    def validate(self) -> dict:
        return evaluate(self.learner, self.val_sampler, self.val_episodes, progress=False)

    def validation_grid(self):
        """The first validation episode as an image (:func:`tfmeta.plots.episode_grid`: a row
        per class, support then queries, mistakes of the adapted classifier framed in red)."""
        import numpy as np

        from tfmeta.plots import episode_grid

        support_x, support_y, query_x, query_y = (
            np.asarray(t[0]) for t in next(iter(self.val_sampler.dataset(0, 1))))
        logits = self.learner.adapt(support_x, support_y)(query_x, training=False)
        predicted = np.asarray(logits)[:, :int(support_y.max()) + 1].argmax(-1)
        return episode_grid(support_x, support_y, query_x, query_y, predicted)

    def fit(self, until: int | None = None) -> dict:
        """Train to ``steps`` (from the latest checkpoint, if any), or pause after step ``until``
        with a checkpoint, as a kill would. Returns the last metrics."""
        try:
            return self._fit(until)
        finally:
            self.close()

    def _fit(self, until: int | None) -> dict:
        start = self.restore()
        stop = self.steps if until is None else min(int(until), self.steps)
        try:
            writer = (tf.summary.create_file_writer(os.path.join(self.out_dir, "tensorboard"))
                      if self.chief else tf.summary.create_noop_writer())
        except (tf.errors.OpError, OSError) as err:  # a full disk, a read-only mount
            raise self._write_failed(f"TensorBoard logs to {self.out_dir}", err) from None
        # A live bar on a terminal; elsewhere (a log file, a pipe) plain lines at each validation
        # through the "tfmeta" logger, never terminal codes.
        self._live = self.progress and sys.stdout.isatty()
        bar = keras.utils.Progbar(self.steps, stateful_metrics=["val_acc"],
                                  verbose=1 if self._live else 0)
        if start:
            bar.update(start)
        last = {"step": start, "skipped": int(self.skipped.numpy())}
        if start >= stop:
            return last
        began = time.time()
        callbacks, self._callback_model = self._callback_list()
        callbacks.on_train_begin({})
        with _signals_deferred() as received:
            last = self._loop(start, stop, writer, bar, received, last, callbacks)
        writer.flush()
        callbacks.on_train_end({k: v for k, v in last.items() if k != "step"})
        last["seconds"] = time.time() - began
        last["tasks_per_second"] = (last["step"] - start) * self.train_sampler.meta_batch / max(
            last["seconds"], 1e-9)
        return last

    def _callback_list(self) -> tuple:
        """``(CallbackList, model)``: the Keras callbacks and their model, the learner as a
        compiled :class:`tfmeta.MetaModel` (no callbacks: an empty list and ``None``)."""
        model = None
        if self.callbacks:
            from tfmeta.keras_model import MetaModel

            model = MetaModel(self.learner)
            model.compile()
        return keras.callbacks.CallbackList(
            self.callbacks, model=model, epochs=math.ceil(self.steps / self.val_every),
            steps=self.val_every, verbose=0), model

    def _loop(self, start, stop, writer, bar, received, last, callbacks) -> dict:
        in_a_row = 0
        epoch_sums = [0.0, 0.0, 0]  # this epoch's meta-training loss, accuracy, steps
        for batch in self.train_sampler.dataset(start=start, num_batches=stop - start):
            epoch, in_epoch = divmod(int(self.step.numpy()), self.val_every)
            if in_epoch == 0 or epoch_sums[2] == 0:
                callbacks.on_epoch_begin(epoch)
            callbacks.on_train_batch_begin(in_epoch)
            metrics = self.learner.meta_train_step(batch)
            step = int(self.step.assign_add(1).numpy())
            loss, acc = float(metrics["loss"]), float(metrics["accuracy"])
            skipped = float(metrics.get("skipped", 0.0)) > 0 or not math.isfinite(loss)
            in_a_row = in_a_row + 1 if skipped else 0
            if skipped:
                self.skipped.assign_add(1)
            if skipped and (self.on_nonfinite == "stop" or "skipped" not in metrics
                            or in_a_row >= MAX_SKIPPED_IN_A_ROW):
                raise TrainingStopped(
                    f"non-finite meta-loss or meta-gradient at step {step} ({in_a_row} in a "
                    f"row; loss {loss}); nothing of it was saved: the latest checkpoint "
                    f"({self.latest.latest_checkpoint or 'none yet'}) is the last good state. "
                    "Lower the learning rates or check the data, then resume with the same "
                    "command")
            callbacks.on_train_batch_end(in_epoch, {"loss": loss, "accuracy": acc})
            epoch_sums = [epoch_sums[0] + loss, epoch_sums[1] + acc, epoch_sums[2] + 1]
            values = [("loss", loss), ("acc", acc)]
            with writer.as_default(step=step):
                tf.summary.scalar("train/loss", loss)
                tf.summary.scalar("train/accuracy", acc)
            last = {"step": step, "loss": loss, "accuracy": acc,
                    "skipped": int(self.skipped.numpy())}
            if self.val_sampler is not None and (step % self.val_every == 0 or step == self.steps):
                result = self.validate()
                values.append(("val_acc", result["accuracy"]))
                last["val_accuracy"] = result["accuracy"]
                with writer.as_default(step=step):
                    tf.summary.scalar("val/accuracy", result["accuracy"])
                    tf.summary.scalar("val/ci95", result["ci95"])
                    if self.learner.strategy is None and (  # one device: adapt() runs here
                            step == self.steps or step % (10 * self.val_every) == 0):
                        tf.summary.image("val/episode", self.validation_grid()[None])
                if result["accuracy"] > self.best_accuracy.numpy():
                    self.best_accuracy.assign(result["accuracy"])
                    self._save(self.best, step)
            stopped = False
            if step % self.val_every == 0 or step == self.steps:  # an epoch ends
                logs = {"loss": epoch_sums[0] / epoch_sums[2],
                        "accuracy": epoch_sums[1] / epoch_sums[2]}
                if self.val_sampler is not None:
                    logs.update(val_accuracy=result["accuracy"], val_ci95=result["ci95"],
                                val_loss=result["loss"])
                callbacks.on_epoch_end(epoch, logs)
                epoch_sums = [0.0, 0.0, 0]
                stopped = bool(self._callback_model is not None
                               and self._callback_model.stop_training)
            if (step % self.checkpoint_every == 0 or step in (stop, self.steps) or received
                    or stopped):
                if self.val_sampler is None:
                    self._save(self.best, step)
                self._save(self.latest, step)
            bar.update(step, values=values)
            if self.progress and not self._live and "val_accuracy" in last:
                logging.getLogger("tfmeta").info(
                    f"step {step}/{self.steps}: loss {loss:.4f}, accuracy {acc:.4f}, "
                    f"validation accuracy {last['val_accuracy']:.4f}")
            if stopped:
                logging.getLogger("tfmeta").info(
                    f"stopped by a callback after step {step}; saved "
                    f"{self.latest.latest_checkpoint}")
                last["stopped_by_callback"] = True
                return last
            if received:
                name = signal.Signals(received[0]).name
                raise TrainingStopped(f"stopped by {name} after step {step}; saved "
                                      f"{self.latest.latest_checkpoint}; the same command "
                                      "resumes", received[0])
        return last

    def _save(self, manager, step: int) -> None:
        """Save a checkpoint once its values are checked to be finite (a non-finite value is
        never written: the run stops with one line naming the variable); a failed write (a full
        disk, a quota, a lost mount) stops the run with one line: TensorFlow writes the state file
        that names the latest checkpoint last and atomically, so the previous checkpoint stays
        the one a resume uses."""
        bad = nonfinite_names(self.learner.step_state())
        if bad:
            raise TrainingStopped(
                f"the state at step {step} holds non-finite values ({first_names(bad)}); it was "
                f"not saved: the latest checkpoint "
                f"({self.latest.latest_checkpoint or 'none yet'}) is the last good state. Lower "
                "the learning rates or check the data, then resume with the same command")
        try:
            manager.save(checkpoint_number=step)
        except (tf.errors.OpError, OSError) as err:
            raise self._write_failed(f"the checkpoint of step {step} to {manager.directory}",
                                     err) from None

    def _write_failed(self, what: str, err) -> TrainingStopped:
        message = getattr(err, "message", None) or str(err)
        reason = next((cause for cause in WRITE_FAILURES if cause in message),
                      (message.strip().splitlines() or [type(err).__name__])[0][:200])
        return TrainingStopped(
            f"could not write {what} ({reason}); the previous checkpoint "
            f"({self.latest.latest_checkpoint or 'none'}) is intact: free some space and run "
            "the same command to resume")

    def close(self) -> None:
        """Delete a non-chief worker's scratch checkpoints (the chief's are the run's)."""
        if not self.chief:
            shutil.rmtree(self.write_dir, ignore_errors=True)


@contextlib.contextmanager
def _signals_deferred():
    """Within the block SIGINT and SIGTERM do not interrupt: their numbers are appended to the
    list it yields, for the loop to stop at the end of a step (a step interrupted half-way would
    leave the weights and the step counter apart). Outside the main thread: nothing changes."""
    received: list = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = {}

    def handler(number, frame):
        if received:  # a second signal: stop now, as Python would
            raise KeyboardInterrupt
        received.append(number)

    for number in (signal.SIGINT, signal.SIGTERM):
        previous[number] = signal.signal(number, handler)
    try:
        yield received
    finally:
        for number, old in previous.items():
            signal.signal(number, old)
