"""Calibrated confidence (tfmeta/calibration.py): the expected calibration error against a count
by hand, the fitted temperature against a brute-force search of the likelihood and against a
temperature known in advance, the learner's answers (adapt, fewshot_logits, predict_proba, a
SavedModel export) divided by it, and a run that fits it on validation episodes, stores it,
reports the ECE before and after, and is refitted by ``tfmeta calibrate``; unknown scores,
rejection with the threshold fitted on validation classes, and their exports."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmeta.calibration import (expected_calibration_error, fit_temperature, read_calibration,
                                softmax)
from tfmeta.cli import main
from tfmeta.data import EpisodeConfig, EpisodeSampler
from tfmeta.errors import ConfigError
from tfmeta.learners import create

EPISODE = EpisodeConfig(3, 2, 2)


def _nll(logits, labels, temperature):
    z = logits / temperature
    z = z - z.max(-1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(-1)) - z[np.arange(len(labels)), labels]))


def test_expected_calibration_error_is_the_binned_gap_counted_by_hand():
    # confidences 0.9 (right), 0.9 (wrong), 0.5 (right), 0.4 (wrong): three bins of 15 hold
    # them: (0.867, 0.933] -> |1/2 - 0.9|, (0.467, 0.533] -> |1 - 0.5|, (0.333, 0.4] -> |0 - 0.4|
    p = np.array([[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.5, 0.3, 0.2], [0.4, 0.3, 0.3]])
    y = np.array([0, 1, 0, 2])
    want = 2 / 4 * 0.4 + 1 / 4 * 0.5 + 1 / 4 * 0.4
    assert expected_calibration_error(p, y) == pytest.approx(want, abs=1e-12)
    assert expected_calibration_error(np.eye(3), np.arange(3)) == 0.0  # sure and right


def test_the_temperature_minimises_the_likelihood_and_recovers_a_known_one():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4000, 5)) * 4.0
    true_temperature = 2.5  # labels drawn from softmax(logits / 2.5): overconfident logits
    p = softmax(logits / true_temperature)
    labels = np.array([rng.choice(5, p=row) for row in p])
    fitted = fit_temperature(logits, labels)
    assert fitted == pytest.approx(true_temperature, rel=0.06)
    grid = np.exp(np.linspace(np.log(0.1), np.log(10.0), 4001))  # brute force, 0.1 % apart
    best = grid[np.argmin([_nll(logits, labels, t) for t in grid])]
    assert fitted == pytest.approx(best, rel=2e-3)
    assert _nll(logits, labels, fitted) <= min(_nll(logits, labels, fitted * 1.01),
                                               _nll(logits, labels, fitted / 1.01))
    assert (expected_calibration_error(softmax(logits / fitted), labels)
            < 0.5 * expected_calibration_error(softmax(logits), labels))
    with pytest.raises(ValueError, match="non-finite"):
        fit_temperature(np.array([[np.nan, 0.0]]), np.array([0]))


@pytest.fixture(scope="module")
def batch(small_glyphs):
    sampler = EpisodeSampler(small_glyphs, EPISODE, meta_batch=2, seed=4)
    return [t.numpy() for t in next(iter(sampler.dataset()))]


@pytest.mark.parametrize("algorithm", ["protonet", "maml"])
def test_every_answer_and_export_is_divided_by_the_temperature(algorithm, batch, tmp_path):
    import tfmeta.export as export

    keras.utils.set_random_seed(0)
    learner = create(algorithm, "conv4", episode=EPISODE, backbone_width=8,
                     **({"inner_steps": 1} if algorithm == "maml" else {}))
    sx, sy, qx, qy = batch
    support_images = np.round(sx[0] * 255).astype(np.uint8)  # as predict_proba takes them
    query_images = np.round(qx[0] * 255).astype(np.uint8)
    sx, qx = sx.copy(), qx.copy()
    sx[0], qx[0] = support_images / 255.0, query_images / 255.0
    raw = learner.adapt(sx[0], sy[0])(qx[0], training=False).numpy()
    raw_fewshot = learner.fewshot_logits(sx[0], sy[0], qx[0]).numpy()
    step = learner.meta_test_step(batch)
    np.testing.assert_allclose(step["logits"].numpy()[0][:, :3], raw[:, :3], rtol=1e-4,
                               atol=1e-4)  # the test step's logits: the answers, raw
    learner.temperature = 2.5
    classifier = learner.adapt(sx[0], sy[0])
    np.testing.assert_allclose(classifier(qx[0], training=False).numpy(), raw / 2.5, rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(learner.fewshot_logits(sx[0], sy[0], qx[0]).numpy(),
                               raw_fewshot / 2.5, rtol=1e-5, atol=1e-6)
    classes, p = learner.predict_proba(support_images, sy[0], query_images)
    np.testing.assert_allclose(p, softmax(raw[:, :3] / 2.5), atol=1e-4)
    # Every format is verified against the calibrated Keras classifier's probabilities.
    version = export.saved_model(classifier, ["a", "b", "c"], sx[0], export_dir=str(tmp_path),
                                 name="calibrated", fresh_process=False,
                                 formats=("onnx", "tflite") if algorithm == "protonet" else ())
    served = tf.saved_model.load(version).signatures["serving_default"](
        images=tf.constant(qx[0]))
    np.testing.assert_allclose(served["probabilities"].numpy(), softmax(raw / 2.5), atol=1e-5)
    assert float(step["accuracy"][0]) == pytest.approx(
        float(np.mean(raw[:, :3].argmax(-1) == qy[0])))  # accuracy does not move


def test_unknown_scores_rejection_and_their_exports(batch, tmp_path):
    """ProtoNet's unknown score is the squared distance to the nearest prototype over T, from
    the backbone's features in numpy; predict(reject=True) answers -1 above the threshold; the
    SavedModel, ONNX and TFLite files output the same unknown_score and is_unknown, and an
    export whose unknown scores disagree is refused."""
    import tfmeta.export as export
    from tfmeta.export.check import VERIFICATION_FILE, check

    keras.utils.set_random_seed(0)
    learner = create("protonet", "conv4", episode=EPISODE, backbone_width=8)
    learner.temperature = 2.0
    sx, sy, qx, _ = batch
    support_images = np.round(sx[0] * 255).astype(np.uint8)
    query_images = np.round(qx[0] * 255).astype(np.uint8)
    s, q = support_images / 255.0, query_images / 255.0
    fs = learner.model(s.astype(np.float32), training=False).numpy().reshape(len(s), -1)
    fq = learner.model(q.astype(np.float32), training=False).numpy().reshape(len(q), -1)
    centres = np.stack([fs[sy[0] == k].mean(0) for k in range(3)])
    distance = ((fq[:, None] - centres[None]) ** 2).sum(-1).min(-1) / 2.0
    names = np.array(["a", "b", "c"])[sy[0]]
    scores = learner.unknown_scores(support_images, names, query_images)
    np.testing.assert_allclose(scores, distance, rtol=1e-4)
    with pytest.raises(ConfigError, match="no threshold"):
        learner.predict(support_images, names, query_images, reject=True)
    threshold = float(np.median(scores))
    answers = learner.predict(support_images, names, query_images, reject=True,
                              threshold=threshold)
    labels = learner.predict(support_images, names, query_images)
    np.testing.assert_array_equal(answers == -1, scores > threshold)
    assert list(answers[scores <= threshold]) == list(labels[scores <= threshold])

    learner.unknown_threshold = threshold
    classifier = learner.adapt(s.astype(np.float32), sy[0])
    version = export.saved_model(classifier, ["a", "b", "c"], q.astype(np.float32),
                                 export_dir=str(tmp_path), name="open", fresh_process=False,
                                 formats=("onnx", "tflite"), unknown_threshold=threshold)
    served = tf.saved_model.load(version).signatures["serving_default"](
        images=tf.constant(q, tf.float32))
    np.testing.assert_allclose(served["unknown_score"].numpy(), scores, rtol=1e-4)
    np.testing.assert_array_equal(served["is_unknown"].numpy(), scores > threshold)
    differences, ok = check(version, [os.path.join(version, "model.onnx"),
                                      os.path.join(version, "model.tflite")])
    assert ok and {"model.onnx:unknown_score", "model.tflite:unknown_score"} <= set(differences)
    stored = dict(np.load(os.path.join(version, VERIFICATION_FILE)))
    stored["expected:unknown_score"] = stored["expected:unknown_score"] + 1.0
    np.savez(os.path.join(version, VERIFICATION_FILE), **stored)
    assert not check(version)[1]  # a wrong unknown score fails the check


def test_a_run_fits_stores_and_reports_its_temperature(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert main(["train", "--algorithm", "protonet", "--steps", "4", "--width", "8",
                 "--val-every", "4", "--val-episodes", "2", "--episodes", "20", "--ways", "3",
                 "--set", "train.calibration_episodes=40", "--out", run, "--no-progress"]) == 0
    assert "calibrated on 40 validation episodes" in capsys.readouterr().out
    with open(os.path.join(run, "calibration.json")) as f:
        facts = json.load(f)
    assert facts["episodes"] == 40 and facts["classes"] == "validation"
    assert facts["ece_after"] <= facts["ece_before"] + 1e-9

    # The fit, checked on the validation episodes' logits computed again here.
    from tfmeta.calibration import answers_of
    from tfmeta.rundir import load_config
    from tfmeta.data import load_splits
    from tfmeta.run import VALIDATION_SEED, load

    learner = load(run)
    assert learner.temperature == pytest.approx(facts["temperature"])
    config = load_config(run)
    sampler = EpisodeSampler(load_splits(config.data)["val"], config.episode,
                             config.train.meta_batch, VALIDATION_SEED + config.train.seed, "val")
    logits, labels = answers_of(learner, sampler, 40)
    logits, labels = logits.reshape(-1, logits.shape[-1]), labels.reshape(-1)
    t = facts["temperature"]
    assert _nll(logits, labels, t) <= min(_nll(logits, labels, t * 1.02),
                                          _nll(logits, labels, t / 1.02)) + 1e-9
    assert facts["ece_before"] == pytest.approx(
        expected_calibration_error(softmax(logits), labels))
    # The unknown threshold: 5 % of the known validation queries score above it.
    assert facts["unknown_threshold"] == pytest.approx(
        np.quantile(-(logits / t).max(-1), 0.95), rel=1e-6)
    assert learner.unknown_threshold == pytest.approx(facts["unknown_threshold"])
    with open(os.path.join(run, "results.json")) as f:
        result = json.load(f)
    assert result["temperature"] == pytest.approx(t)
    assert {"ece", "uncalibrated_ece"} <= set(result)

    # tfmeta calibrate refits it for another setting; a damaged file is one line.
    assert main(["calibrate", "--checkpoint", run, "--episodes", "10", "--shots", "2",
                 "--quiet"]) == 0
    assert "written to" in capsys.readouterr().out
    with open(os.path.join(run, "calibration.json")) as f:
        refit = json.load(f)
    assert (refit["episodes"], refit["shots"]) == (10, 2)
    assert read_calibration(run) == pytest.approx(
        (refit["temperature"], refit["unknown_threshold"]))

    # tfmeta evaluate --open-set U: the open-set figures beside the accuracy; too many classes
    # is one line.
    assert main(["evaluate", "--checkpoint", run, "--episodes", "4", "--open-set", "2",
                 "--quiet"]) == 0
    assert "AUROC" in capsys.readouterr().out
    with open(os.path.join(run, "evaluation.json")) as f:
        open_set = json.load(f)["open_set"]
    assert open_set["unknown_ways"] == 2
    assert {"auroc", "known_accuracy", "unknown_rejected"} <= set(open_set)
    assert open_set["unknown_threshold"] == pytest.approx(refit["unknown_threshold"])
    assert main(["evaluate", "--checkpoint", run, "--open-set", "500", "--quiet"]) == 2
    assert "test classes" in capsys.readouterr().err

    # tfmeta predict --reject: "none of these" above the threshold.
    from test_export import _glyph_folder

    support, queries = str(tmp_path / "support"), str(tmp_path / "queries")
    _glyph_folder(support, ["a", "b", "c"], 2)
    _glyph_folder(queries, ["x", "y", "z", "w"], 2, seed=906)  # other classes
    out = str(tmp_path / "predictions.json")
    assert main(["predict", "--checkpoint", run, "--support", support, "--query", queries,
                 "--reject", "--out", out, "--quiet"]) == 0
    with open(out) as f:
        rows = json.load(f)
    threshold = refit["unknown_threshold"]
    assert [row["class"] == "none of these" for row in rows] == [
        row["unknown_score"] > threshold for row in rows]

    with open(os.path.join(run, "calibration.json"), "w") as f:
        f.write("{")
    with pytest.raises(ConfigError, match="damaged") as err:
        read_calibration(run)
    assert "\n" not in str(err.value)


def test_the_nearest_setting_and_bad_settings():
    from tfmeta.calibration import nearest_setting, parse_settings

    assert parse_settings("5x1, 20x5,5X5") == [(5, 1), (20, 5), (5, 5)]
    assert parse_settings("") == []
    for bad in ("5", "1x1", "5x0", "ax1", "5x1x2"):
        with pytest.raises(ConfigError, match="WAYSxSHOTS"):
            parse_settings(bad)
    table = [{"ways": 5, "shots": 1}, {"ways": 5, "shots": 5}, {"ways": 20, "shots": 1},
             {"ways": 20, "shots": 5}]
    # by hand: |log(ways / w)| + |log(shots / k)|, least first
    assert [nearest_setting(table, w, k) for w, k in
            [(5, 1), (4, 1), (10, 1), (11, 1), (20, 3), (30, 2), (3, 2.3), (5, 2.2)]] == [
                0, 0, 0, 2, 3, 2, 1, 0]


def test_each_support_set_is_answered_at_its_nearest_settings_temperature(small_glyphs,
                                                                         tmp_path):
    """Per-setting calibrations (a temperature and threshold per ways x shots): adapt(),
    fewshot_logits eagerly and in a graph, predict(reject=True) and the few-shot servable take the
    nearest setting's, so one learner answers 3-way 1-shot and 6-way 2-shot support sets each
    at its own temperature."""
    from tfmeta.export.servables import FewShotServable

    keras.utils.set_random_seed(0)
    learner = create("protonet", "conv4", episode=EPISODE, backbone_width=8)
    learner.calibrations = ({"ways": 3, "shots": 1, "temperature": 2.0, "unknown_threshold": -1.0},
                            {"ways": 6, "shots": 2, "temperature": 0.5, "unknown_threshold": 1e9})
    learner.temperature, learner.unknown_threshold = 7.0, 0.0  # the run's: never used here
    for ways, shots, temperature, threshold in ((3, 1, 2.0, -1.0), (6, 2, 0.5, 1e9)):
        sampler = EpisodeSampler(small_glyphs, EpisodeConfig(ways, shots, 2), meta_batch=1,
                                 seed=ways)
        sx, sy, qx, _ = [t.numpy()[0] for t in next(iter(sampler.dataset()))]
        raw = learner.meta_test_step(next(iter(sampler.dataset())))["logits"].numpy()[0]
        np.testing.assert_allclose(learner.fewshot_logits(sx, sy, qx).numpy(), raw / temperature,
                                   rtol=1e-5, atol=1e-5)
        graph = tf.function(learner.fewshot_logits)(tf.constant(sx), tf.constant(sy),
                                                    tf.constant(qx))
        np.testing.assert_allclose(graph.numpy(), raw / temperature, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(learner.adapt(sx, sy)(qx).numpy()[:, :ways],
                                   raw / temperature, rtol=1e-5, atol=1e-5)
        answers = learner.predict(np.round(sx * 255).astype(np.uint8), sy,
                                  np.round(qx * 255).astype(np.uint8), reject=True)
        # every score (ProtoNet's logits are <= 0) is above -1 and below 1e9: all unknown at the
        # first setting's threshold, none at the second's
        assert ((answers == -1) == (threshold < 0)).all()
        served = FewShotServable(learner).classify(tf.constant(sx), tf.constant(sy),
                                                   tf.constant(qx))
        assert (served["is_unknown"].numpy() == (threshold < 0)).all()


def test_a_fixed_width_learner_is_calibrated_for_the_settings_it_answers(tmp_path):
    """A 3-way first-order MAML asked for 6-way calibration too (as the omniglot-small benchmark
    asks every learner for its 20-way settings): the wider setting is left out, training ends
    with its calibration written, and so does ``tfmeta calibrate``. Before, the run ended in
    "built for at most 3 classes" after training, with nothing calibrated."""
    run = _calibrated_run(tmp_path, "fomaml", 10, "3x1,6x1,3x2")
    with open(os.path.join(run, "calibration.json")) as f:
        assert [(e["ways"], e["shots"]) for e in json.load(f)["settings"]] == [(3, 1), (3, 2)]
    assert main(["calibrate", "--checkpoint", run, "--episodes", "10", "--settings", "6x1",
                 "--quiet"]) == 0
    with open(os.path.join(run, "calibration.json")) as f:
        facts = json.load(f)
    assert (facts["ways"], facts["shots"], facts.get("settings")) == (3, 1, None)  # its own alone


def _calibrated_run(tmp_path, algorithm, episodes, settings) -> str:
    """A 3-way run of 2 steps of ``algorithm`` calibrated on ``episodes`` validation episodes of
    its own setting and of ``settings``."""
    run = str(tmp_path / "run")
    assert main(["train", "--algorithm", algorithm, "--steps", "2", "--width", "8",
                 "--val-every", "2", "--val-episodes", "2", "--episodes", "4", "--ways", "3",
                 "--set", f"train.calibration_episodes={episodes}", "--set",
                 f"train.calibration_settings={settings}", "--out", run, "--no-progress"]) == 0
    return run


def test_a_run_calibrates_each_setting_it_is_asked_for(tmp_path):
    """train.calibration_settings: calibration.json holds a temperature per setting, each the
    likelihood's minimum on that setting's validation answers; tfmeta.run.load answers with it."""
    from tfmeta.calibration import answers_of
    from tfmeta.data import load_splits
    from tfmeta.rundir import load_config
    from tfmeta.run import VALIDATION_SEED, load

    run = _calibrated_run(tmp_path, "protonet", 20, "3x1,6x2,999x1")
    with open(os.path.join(run, "calibration.json")) as f:
        facts = json.load(f)
    settings = [(e["ways"], e["shots"]) for e in facts["settings"]]
    assert settings == [(3, 1), (6, 2)]  # the run's own first; 999 ways: left out, with a warning
    learner = load(run)
    config = load_config(run)
    validation = load_splits(config.data)["val"]
    for entry, calibrated in zip(facts["settings"], learner.calibrations):
        assert calibrated["temperature"] == pytest.approx(entry["temperature"])
        sampler = EpisodeSampler(validation, EpisodeConfig(entry["ways"], entry["shots"],
                                                           config.episode.queries),
                                 config.train.meta_batch, VALIDATION_SEED + config.train.seed,
                                 "val")
        logits, labels = answers_of(learner, sampler, 20)
        logits, labels = logits.reshape(-1, logits.shape[-1]), labels.reshape(-1)
        t = entry["temperature"]
        assert _nll(logits, labels, t) <= min(_nll(logits, labels, t * 1.02),
                                              _nll(logits, labels, t / 1.02)) + 1e-9
    assert learner.setting_calibration(6, 2)[0] == pytest.approx(
        facts["settings"][1]["temperature"])
    # tfmeta calibrate --settings refits them; a bad setting is one line
    assert main(["calibrate", "--checkpoint", run, "--episodes", "10", "--settings", "4x3",
                 "--quiet"]) == 0
    with open(os.path.join(run, "calibration.json")) as f:
        assert [(e["ways"], e["shots"], e["episodes"]) for e in json.load(f)["settings"]] == [
            (3, 1, 10), (4, 3, 10)]
    assert main(["train", "--algorithm", "protonet", "--set", "train.calibration_settings=20",
                 "--print-config"]) == 2
