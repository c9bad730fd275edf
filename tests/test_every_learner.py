"""Every learner behind the one interface: any backbone, adapt() and predict() agree, the adapted
classifier is a self-contained Keras model (.keras), eager and compiled steps agree."""

import keras
import numpy as np
import pytest

from tfmeta.data import EpisodeConfig, EpisodeSampler
from tfmeta.learners import ALGORITHMS, create

from learner_cases import smoke_options

EPISODE = EpisodeConfig(3, 2, 2)


def _learner(algorithm, backbone, compiled=True):
    keras.utils.set_random_seed(0)
    return create(algorithm, backbone, episode=EPISODE, backbone_width=8, compiled=compiled,
                  **smoke_options(algorithm, EPISODE))


@pytest.fixture(scope="module")
def episode(small_glyphs):
    sampler = EpisodeSampler(small_glyphs, EpisodeConfig(3, 2, 2), meta_batch=2, seed=4)
    return [t.numpy() for t in next(iter(sampler.dataset()))]


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_learner_with_resnet12_adapts_and_predicts_consistently(algorithm, episode, tmp_path):
    learner = _learner(algorithm, "resnet12")
    metrics = learner.meta_train_step(episode)
    assert np.isfinite(float(metrics["loss"]))
    sx, sy, qx, _ = episode
    classifier = learner.adapt(sx[0], sy[0])
    assert isinstance(classifier, keras.Model)
    logits = classifier(qx[0], training=False).numpy()
    assert logits.shape == (6, 3)
    names = np.array(["a", "b", "c"])[sy[0]]
    predicted = learner.predict((sx[0] * 255).astype(np.uint8), names, (qx[0] * 255).astype(np.uint8))
    np.testing.assert_array_equal(predicted, np.array(["a", "b", "c"])[logits.argmax(-1)])
    # The classifier is self-contained: meta-training the learner further does not change it,
    # and it saves as .keras and reloads with keras.models.load_model.
    learner.meta_train_step(episode)
    np.testing.assert_array_equal(classifier(qx[0], training=False).numpy(), logits)
    path = str(tmp_path / "classifier.keras")
    classifier.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_allclose(reloaded(qx[0], training=False).numpy(), logits, rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("algorithm", ["protonet", "maml", "svm"])
def test_eager_and_compiled_steps_agree(algorithm, episode):
    eager = _learner(algorithm, "conv4", compiled=False)
    compiled = _learner(algorithm, "conv4", compiled=True)
    a = eager.meta_test_step(episode)["accuracy"].numpy()
    b = compiled.meta_test_step(episode)["accuracy"].numpy()
    np.testing.assert_allclose(a, b, atol=1e-6)
