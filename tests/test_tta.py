"""Test-time augmentation (issue 28, point 6): shifted support copies as extra shots, answers
averaged over shifted query copies; the adapted classifier does the same inside its graph, so
every export answers as evaluation measured."""

import numpy as np
import pytest
import tensorflow as tf

from tfmeta.data import EpisodeConfig, EpisodeSampler
from tfmeta.errors import ConfigError
from tfmeta.evaluation import evaluate
from tfmeta.learners import create
from tfmeta.learners.tta import TestTimeAugmentation, shifted, tta_logits

EPISODE = EpisodeConfig(3, 1, 2)
TTA = TestTimeAugmentation()


def test_a_shift_moves_every_pixel_and_mirrors_the_opened_border():
    x = np.arange(2 * 5 * 6, dtype=np.float32).reshape(2, 5, 6, 1)
    for dy, dx in TTA.offsets:
        got = shifted(tf.constant(x), dy, dx, 1).numpy()
        for i in range(5):
            for j in range(6):
                # pixel (i, j) shows (i - dy, j - dx), reflected into the image at its edge
                source_i = min(max(i - dy, 0), 4)
                source_j = min(max(j - dx, 0), 5)
                assert np.array_equal(got[:, i, j], x[:, source_i, source_j]), (dy, dx, i, j)


@pytest.fixture(scope="module")
def episode(small_glyphs):
    sampler = EpisodeSampler(small_glyphs, EPISODE, 2, seed=1)
    return sampler, [t.numpy() for t in next(iter(sampler.dataset()))]


@pytest.mark.parametrize("algorithm", ["protonet", "maml"])
def test_tta_logits_are_the_mean_logits_over_shifted_queries_of_an_augmented_support(
        algorithm, episode):
    sampler, (sx, sy, qx, qy) = episode
    learner = create(algorithm, "conv4", episode=EPISODE, backbone_width=8)
    # Independently: numpy shifts (np.roll, then the opened row / column copied from the edge),
    # nine adaptations' worth of queries, the mean of their logits (which keeps the scale the
    # unknown score reads: minus the largest mean logit).
    def np_shift(images, dy, dx):
        rows = np.roll(images, dy, axis=1)
        if dy > 0:
            rows[:, :dy] = images[:, :1]
        if dy < 0:
            rows[:, dy:] = images[:, -1:]
        out = np.roll(rows, dx, axis=2)
        if dx > 0:
            out[:, :, :dx] = rows[:, :, :1]
        if dx < 0:
            out[:, :, dx:] = rows[:, :, -1:]
        return out

    support = np.concatenate([np_shift(sx[0], dy, dx) for dy, dx in TTA.offsets])
    labels = np.tile(sy[0], len(TTA.offsets))
    logits = np.mean([learner.fewshot_logits(support, labels, np_shift(qx[0], dy, dx)).numpy()
                      for dy, dx in TTA.offsets], 0)
    got = tta_logits(learner, sx[0], sy[0], qx[0], TTA).numpy()
    np.testing.assert_allclose(got, logits, rtol=1e-5, atol=1e-4)
    probabilities = tf.nn.softmax(logits).numpy()
    # The adapted classifier answers the same, one image at a time.
    classifier = learner.adapt(sx[0], sy[0], tta=TTA)
    one_by_one = np.concatenate([np.asarray(classifier(q[None])) for q in qx[0]])
    np.testing.assert_allclose(one_by_one, logits, rtol=1e-5, atol=1e-4)
    # Evaluation reports it beside the plain accuracy, on the same episodes.
    result = evaluate(learner, sampler, 2, tta=TTA, progress=False)
    accuracy = np.mean(probabilities.argmax(-1) == qy[0])
    assert result["tta"] == {"shift": 1, "support": True, "query": True}
    np.testing.assert_allclose(
        result["tta_accuracy"],
        np.mean([accuracy, np.mean(tf.nn.softmax(tta_logits(
            learner, sx[1], sy[1], qx[1], TTA)).numpy().argmax(-1) == qy[1])]), atol=1e-6)
    if algorithm == "protonet":  # and its transductive figure: every query copy refines
        copies = np.concatenate([np_shift(qx[0], dy, dx) for dy, dx in TTA.offsets])
        together = learner.transductive_logits(support, labels, copies).numpy()
        together = together.reshape(len(TTA.offsets), len(qx[0]), -1).mean(0)
        second = learner.transductive_logits(
            np.concatenate([np_shift(sx[1], dy, dx) for dy, dx in TTA.offsets]),
            np.tile(sy[1], len(TTA.offsets)),
            np.concatenate([np_shift(qx[1], dy, dx) for dy, dx in TTA.offsets])).numpy()
        second = second.reshape(len(TTA.offsets), len(qx[1]), -1).mean(0)
        np.testing.assert_allclose(result["tta_transductive_accuracy"], np.mean(
            [np.mean(together.argmax(-1) == qy[0]), np.mean(second.argmax(-1) == qy[1])]),
            atol=1e-6)
    else:
        assert "tta_transductive_accuracy" not in result


def test_bad_settings_are_one_line():
    with pytest.raises(ConfigError, match="positive number of pixels"):
        TestTimeAugmentation(shift=0)
    with pytest.raises(ConfigError, match="support copies, query copies or both"):
        TestTimeAugmentation(support=False, query=False)


def test_an_adapted_classifier_with_tta_exports_and_every_format_answers_the_same(
        episode, tmp_path):
    """SavedModel, ONNX and TFLite of the augmented classifier, each verified against the Keras
    model on the support images by the exporter (its mirrored padding and mean are in the
    graph)."""
    import json
    import os

    import tfmeta.export as export

    _, (sx, sy, qx, _) = episode
    learner = create("protonet", "conv4", episode=EPISODE, backbone_width=8)
    classifier = learner.adapt(sx[0], sy[0], tta=TTA)
    version_dir = export.saved_model(classifier, ["a", "b", "c"], sx[0], str(tmp_path), "tta",
                                     ["onnx", "tflite"], fresh_process=False)
    facts = json.load(open(os.path.join(version_dir, "assets.extra", "tfmeta.json")))
    assert max(facts["max_abs_difference"].values()) < 1e-4, facts["max_abs_difference"]
    assert {"model.onnx", "model.tflite"} <= set(os.listdir(version_dir))
    served = tf.saved_model.load(version_dir).signatures["serving_default"]
    probabilities = served(images=tf.constant(qx[0]))["probabilities"].numpy()
    np.testing.assert_allclose(probabilities, tf.nn.softmax(tta_logits(
        learner, sx[0], sy[0], qx[0], TTA)).numpy(), atol=2e-5)
