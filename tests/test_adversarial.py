"""Adversarial querying (Goldblum et al. 2020): perturbed queries stay in the L-infinity ball and
the image range and raise the loss the attack targets; robust accuracy is reported beside clean
accuracy on the same episodes and is not above it; meta-training on attacked queries runs for
the MAML family and the metric learners, and Reptile (no query loss) is refused in one line."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmeta.data import EpisodeConfig, EpisodeSampler
from tfmeta.errors import ConfigError
from tfmeta.evaluation import evaluate
from tfmeta.learners import create
from tfmeta.learners.adversarial import Attack, perturb
from tfmeta.run import RunConfig, TrainConfig

EPISODE = EpisodeConfig(3, 1, 3)


@pytest.fixture(scope="module")
def sampler(small_glyphs):
    return EpisodeSampler(small_glyphs, EPISODE, meta_batch=2, seed=7)


def _learner(algorithm, attack=None):
    keras.utils.set_random_seed(0)
    return create(algorithm, "conv4", episode=EPISODE, backbone_width=8, attack=attack)


@pytest.mark.parametrize("kind", ["fgsm", "pgd"])
def test_perturbed_queries_stay_in_the_ball_and_raise_the_loss(sampler, kind):
    learner = _learner("protonet")
    batch = next(iter(sampler.dataset()))
    sx, sy, qx, qy = batch
    attack = Attack(kind, 0.1, 5)

    def loss_of(q):
        return tf.reduce_sum(learner._meta_test_step(sx, sy, q, qy)["loss"])

    adversarial = perturb(loss_of, qx, attack, (0, 1)).numpy()
    assert np.max(np.abs(adversarial - qx.numpy())) <= 0.1 + 1e-6
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    # Higher than the clean loss and than random signs of the same size (what the gradient adds)
    noise = np.sign(np.random.default_rng(0).uniform(-1, 1, qx.shape)).astype(np.float32)
    random = np.clip(qx.numpy() + 0.1 * noise, 0, 1)
    assert float(loss_of(adversarial)) > max(float(loss_of(qx)), float(loss_of(random)))


def test_robust_accuracy_beside_clean_on_the_same_episodes(sampler):
    learner = _learner("maml")
    clean = evaluate(learner, sampler, episodes=8)
    both = evaluate(learner, sampler, episodes=8, attack=Attack("pgd", 0.1, 3))
    assert both["accuracy"] == clean["accuracy"]  # the clean figure is unchanged
    assert both["robust_accuracy"] <= both["accuracy"]
    assert both["attack"] == {"kind": "pgd", "epsilon": 0.1, "steps": 3}
    assert "robust to pgd (epsilon 0.1, 3 steps)" in __import__(
        "tfmeta.evaluation", fromlist=["format_result"]).format_result(both)


@pytest.mark.parametrize("algorithm", ["maml", "protonet"])
def test_adversarial_meta_training_runs_and_perturbs_queries(sampler, algorithm):
    batch = [t.numpy() for t in next(iter(sampler.dataset()))]
    clean, attacked = _learner(algorithm), _learner(algorithm, Attack("fgsm", 0.1))
    a = float(clean.meta_train_step(batch)["loss"])
    b = float(attacked.meta_train_step(batch)["loss"])
    assert np.isfinite(b) and b > a  # the same weights: attacked queries have the higher loss


def test_bad_attack_settings_are_one_line():
    with pytest.raises(ConfigError, match="reptile has no query loss to attack"):
        RunConfig(algorithm="reptile", train=TrainConfig(adversarial="pgd")).validate()
    with pytest.raises(ConfigError, match="unknown attack 'cw': use fgsm or pgd"):
        TrainConfig(adversarial="cw")
    with pytest.raises(ConfigError, match=r"epsilon must be in \(0, 1\]"):
        TrainConfig(adversarial="fgsm", attack_epsilon=8)


def test_weight_decay_subtracts_its_term_from_the_outer_step(sampler):
    """Decoupled weight decay (a regulariser beside adversarial querying): from the same weights
    and meta-batch, the decayed step ends ``learning_rate * decay * w`` below the plain one."""
    batch = [t.numpy() for t in next(iter(sampler.dataset()))]
    learners = []
    for decay in (0.0, 0.5):
        keras.utils.set_random_seed(0)
        learners.append(create("protonet", "conv4", episode=EPISODE, backbone_width=8,
                               outer_lr=0.01, weight_decay=decay))
    before = [v.numpy().copy() for v in learners[0].meta_variables]
    for learner in learners:
        learner.meta_train_step(batch)
    for w0, plain, decayed in zip(before, *(lr.meta_variables for lr in learners)):
        np.testing.assert_allclose(decayed.numpy(), plain.numpy() - 0.01 * 0.5 * w0,
                                   rtol=1e-4, atol=1e-6)
    with pytest.raises(ConfigError, match="weight_decay must be >= 0"):
        TrainConfig(weight_decay=-1)
