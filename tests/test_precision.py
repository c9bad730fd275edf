"""Mixed precision (``--precision``): the backbone computes in bfloat16 / float16, weights, fast
weights, BatchNorm statistics, losses and heads stay float32; float16 scales its losses (outer and
inner) by the loss-scale optimizer's dynamic scale. Meta-gradients of second-order MAML on Conv4
with BatchNorm (the configuration users run) point where float32's do, within the tolerance
below; every learner meta-trains under bfloat16."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmeta.cli import main
from tfmeta.data import EpisodeConfig, EpisodeSampler
from tfmeta.learners import ALGORITHMS, create

from learner_cases import smoke_options

EPISODE = EpisodeConfig(5, 1, 5)
# Measured (width 16, 5-way 1-shot, one inner step of 0.4): cosine to float32's meta-gradient
# 0.92 for bfloat16 (8-bit mantissa; 13-36 % relative error per weight tensor) and 0.985 for
# float16. Unscaling mistakes give ~0 or a gradient 1024x too large: far outside these.
MIN_COSINE = {"mixed_bfloat16": 0.85, "mixed_float16": 0.95}


@pytest.fixture(scope="module")
def batch(small_glyphs):
    sampler = EpisodeSampler(small_glyphs, EPISODE, meta_batch=2, seed=4)
    return [tf.constant(t.numpy()) for t in next(iter(sampler.dataset()))]


def _meta_gradient(precision, batch):
    keras.utils.set_random_seed(0)
    learner = create("maml", "conv4", episode=EPISODE, input_shape=(28, 28, 1),
                     backbone_width=16, precision=precision, inner_steps=1)
    gradients, _, _ = learner.outer_gradients(*batch)
    scale = learner.inner_loss_scale()  # the optimizer unscales what the tape gave
    gradients = [g / (1.0 if scale is None else scale) for g in gradients]
    return learner, np.concatenate([g.numpy().ravel() for g in gradients])


@pytest.mark.parametrize("precision", sorted(MIN_COSINE))
def test_second_order_maml_meta_gradient_under_mixed_precision(precision, batch):
    _, reference = _meta_gradient("float32", batch)
    learner, mixed = _meta_gradient(precision, batch)
    conv = learner.model.get_layer("conv1")
    assert conv.compute_dtype == precision.split("_")[1] and conv.variable_dtype == "float32"
    assert all(v.dtype == "float32" for v in learner.model.weights)
    cosine = mixed @ reference / np.linalg.norm(mixed) / np.linalg.norm(reference)
    assert cosine > MIN_COSINE[precision]
    assert 0.5 < np.linalg.norm(mixed) / np.linalg.norm(reference) < 2
    if precision == "mixed_float16":
        assert isinstance(learner.optimizer, keras.optimizers.LossScaleOptimizer)
        assert float(learner.inner_loss_scale()) == 2.0 ** 10


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_every_learner_meta_trains_under_bfloat16(algorithm, batch):
    keras.utils.set_random_seed(0)
    learner = create(algorithm, "conv4", episode=EPISODE, input_shape=(28, 28, 1),
                     backbone_width=4, precision="mixed_bfloat16",
                     **smoke_options(algorithm, EPISODE))
    before = [v.numpy().copy() for v in learner.meta_variables]
    metrics = learner.meta_train_step(batch)
    assert metrics["loss"].dtype == tf.float32 and np.isfinite(float(metrics["loss"]))
    assert any(np.any(a != v.numpy()) for a, v in zip(before, learner.meta_variables))
    logits = learner.adapt(batch[0][0], batch[1][0])(batch[2][0])
    assert logits.shape == (25, 5) and np.all(np.isfinite(np.asarray(logits, np.float32)))


def test_unknown_precision_is_one_line(tmp_path, capsys):
    assert main(["train", "--precision", "float8", "--steps", "1", "--out",
                 str(tmp_path / "run")]) == 2
    assert "train.precision must be one of float32, mixed_bfloat16, mixed_float16" in (
        capsys.readouterr().err)
    assert not (tmp_path / "run").exists()
