"""A learner as a keras.Model (issue 14): fit runs exactly the learner's meta-steps, Keras
callbacks work, and validation reports the learner's held-out accuracy."""

import csv

import keras
import numpy as np
import pytest

import tfmeta
from tfmeta.data import EpisodeConfig, EpisodeSampler
from tfmeta.learners import create

EPISODE = EpisodeConfig(3, 1, 2)


def _learner(algorithm, sgd=False):
    keras.utils.set_random_seed(0)
    learner = create(algorithm, "conv4", episode=EPISODE, backbone_width=8)
    if sgd:  # Adam turns float round-off in tiny gradients into whole steps of its rate
        learner.optimizer = keras.optimizers.SGD(0.1)
        learner.optimizer.build(learner.meta_variables)
    return learner


@pytest.fixture(scope="module")
def streams(small_glyphs):
    train, val = small_glyphs.split((0.75, 0.25), seed=0)
    return (EpisodeSampler(train, EPISODE, meta_batch=2, seed=1),
            EpisodeSampler(val, EPISODE, meta_batch=2, seed=2))


@pytest.mark.parametrize("algorithm", ["protonet", "maml"])
def test_fit_takes_the_learners_own_meta_steps(algorithm, streams):
    """Three fit steps leave the weights of three learner.meta_train_step calls on the same
    meta-batches, from the same start (up to float round-off: another graph of the same step)."""
    train, _ = streams
    reference = _learner(algorithm, sgd=True)
    for batch in train.dataset(num_batches=3):
        reference.meta_train_step(batch)
    model = tfmeta.MetaModel(_learner(algorithm, sgd=True))
    model.compile()
    history = model.fit(train.dataset(num_batches=3), epochs=1, verbose=0)
    assert set(history.history) >= {"loss", "accuracy"}
    for got, expected in zip(model.learner.meta_variables, reference.meta_variables):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-4, atol=1e-5)


def test_keras_callbacks_log_stop_and_checkpoint(streams, tmp_path):
    train, val = streams
    model = tfmeta.MetaModel(_learner("protonet"))
    model.compile()
    seen = []
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(logs))
    history = model.fit(
        train.dataset(), steps_per_epoch=3, epochs=6, verbose=0,
        validation_data=val.dataset(), validation_steps=2,
        callbacks=[keras.callbacks.CSVLogger(str(tmp_path / "log.csv")),
                   keras.callbacks.EarlyStopping("val_accuracy", patience=1, mode="max"),
                   keras.callbacks.ModelCheckpoint(str(tmp_path / "best.weights.h5"),
                                                   monitor="val_accuracy", mode="max",
                                                   save_weights_only=True),
                   keras.callbacks.TensorBoard(str(tmp_path / "tb")), record])
    epochs = len(history.history["loss"])
    assert 2 <= epochs <= 6 and len(seen) == epochs
    assert all(0 <= logs["val_accuracy"] <= 1 for logs in seen)
    with open(tmp_path / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == epochs and {"loss", "accuracy", "val_accuracy"} <= set(rows[0])
    assert (tmp_path / "best.weights.h5").exists() and any((tmp_path / "tb").iterdir())
    # validation is the learner's own test step on held-out classes
    batch = next(iter(val.dataset()))
    evaluated = model.evaluate(val.dataset(num_batches=1), verbose=0, return_dict=True)
    assert evaluated["accuracy"] == pytest.approx(
        float(np.mean(model.learner.meta_test_step(batch)["accuracy"])), abs=1e-6)
    # the backbone answers model(images)
    assert model(batch[0][0]).shape == (3, 8)


def test_metamodel_takes_no_optimizer_or_loss():
    model = tfmeta.MetaModel(_learner("protonet"))
    with pytest.raises(ValueError, match="uses the learner's optimizer"):
        model.compile(optimizer="adam")


class _StopAtEpoch(keras.callbacks.Callback):
    """A user's own callback: records every call and asks to stop at the end of one epoch."""

    def __init__(self, epoch):
        super().__init__()
        self.stop_epoch, self.calls, self.batches, self.epochs = epoch, [], [], []

    def on_train_begin(self, logs=None):
        self.calls.append("train_begin")

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(f"epoch_begin {epoch}")

    def on_train_batch_end(self, batch, logs=None):
        self.batches.append(dict(logs))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(f"epoch_end {epoch}")
        self.epochs.append(dict(logs))
        if epoch == self.stop_epoch:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        self.calls.append("train_end")


def test_the_trainer_runs_keras_callbacks_and_stops_when_they_ask(streams, tmp_path):
    """tfmeta's own trainer (exact resume, checkpoints) takes Keras callbacks: an epoch is one
    validation period; epoch logs are the means of its steps' logs and the validation figures;
    a callback's stop_training ends the run with a checkpoint of that step, which resumes."""
    from tfmeta.trainer import MetaTrainer

    train, val = streams
    user = _StopAtEpoch(epoch=1)
    trainer = MetaTrainer(_learner("protonet"), train, out_dir=str(tmp_path), steps=12,
                          val_sampler=val, val_every=3, val_episodes=4, progress=False,
                          callbacks=[user, keras.callbacks.CSVLogger(str(tmp_path / "log.csv"))])
    last = trainer.fit()
    assert last["step"] == 6 and last["stopped_by_callback"]
    assert user.calls == ["train_begin", "epoch_begin 0", "epoch_end 0", "epoch_begin 1",
                          "epoch_end 1", "train_end"]
    assert len(user.batches) == 6 and len(user.epochs) == 2
    for epoch, logs in enumerate(user.epochs):
        steps = user.batches[3 * epoch:3 * epoch + 3]
        for name in ("loss", "accuracy"):
            assert logs[name] == pytest.approx(np.mean([s[name] for s in steps]), rel=1e-9)
        assert 0 < logs["val_ci95"] < 0.5 and np.isfinite(logs["val_loss"]), logs
    assert user.batches[-1]["loss"] == pytest.approx(last["loss"])
    with open(tmp_path / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["val_accuracy"]) for r in rows] == pytest.approx(
        [logs["val_accuracy"] for logs in user.epochs])
    # the trainer's own record of the best validation, kept apart from the callbacks' logs
    assert max(logs["val_accuracy"] for logs in user.epochs) == pytest.approx(
        float(trainer.best_accuracy.numpy()))
    resumed = MetaTrainer(_learner("protonet"), train, out_dir=str(tmp_path), steps=12,
                          val_sampler=val, val_every=3, val_episodes=4, progress=False)
    assert resumed.restore() == 6  # the stop saved its step
    assert resumed.fit()["step"] == 12
