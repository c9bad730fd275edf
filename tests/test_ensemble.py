"""Ensembles (tfmeta/ensemble.py, ``tfmeta ensemble``): the answer is the mean of the members'
probabilities, computed here in numpy from each member's own adapted classifier; an ensemble run
directory evaluates, predicts, adapts and exports (SavedModel, ONNX, TFLite, the few-shot
servable) as one run; bad member sets are one line."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmeta.cli import main
from tfmeta.data import EpisodeConfig, EpisodeSampler
from tfmeta.ensemble import Ensemble
from tfmeta.errors import ConfigError
from tfmeta.learners import create

EPISODE = EpisodeConfig(3, 2, 2)


def _softmax(z):
    z = z - z.max(-1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(-1, keepdims=True)


@pytest.fixture(scope="module")
def batch(small_glyphs):
    sampler = EpisodeSampler(small_glyphs, EPISODE, meta_batch=2, seed=4)
    return [t.numpy() for t in next(iter(sampler.dataset()))]


def _members():
    members = []
    for seed, name in enumerate(["protonet", "relation", "maml"]):
        keras.utils.set_random_seed(seed)
        members.append(create(name, "conv4", episode=EPISODE, backbone_width=8,
                              **({"inner_steps": 1} if name == "maml" else {})))
    return members


def test_the_ensemble_answers_the_mean_of_its_members_probabilities(batch):
    members = _members()
    ensemble = Ensemble(members)
    sx, sy, qx, qy = batch
    expected = np.mean([_softmax(m.adapt(sx[0], sy[0])(qx[0], training=False).numpy()[:, :3])
                        for m in members], 0)
    classifier = ensemble.adapt(sx[0], sy[0])
    np.testing.assert_allclose(_softmax(classifier(qx[0], training=False).numpy()), expected,
                               atol=1e-5)
    np.testing.assert_allclose(
        _softmax(ensemble.fewshot_logits(sx[0], sy[0], qx[0]).numpy()), expected, atol=1e-5)
    step = ensemble.meta_test_step(batch)
    assert float(step["accuracy"][0]) == pytest.approx(np.mean(expected.argmax(-1) == qy[0]))
    assert float(step["loss"][0]) == pytest.approx(
        -np.mean(np.log(expected[np.arange(len(qy[0])), qy[0]])), rel=1e-4)
    assert ensemble.max_ways == 3  # MAML's 3-way head bounds the ensemble
    assert ensemble.name == "ensemble(protonet+relation+maml)"


def test_members_must_take_the_same_images():
    keras.utils.set_random_seed(0)
    small = create("protonet", "conv4", episode=EPISODE, backbone_width=4, input_shape=(28, 28, 1))
    large = create("protonet", "conv4", episode=EPISODE, backbone_width=4, input_shape=(32, 32, 1))
    with pytest.raises(ConfigError, match="must share height, width and channels"):
        Ensemble([small, large])
    with pytest.raises(ConfigError, match="at least 2"):
        Ensemble([small])


def test_an_ensemble_run_evaluates_predicts_adapts_and_exports_as_one(tmp_path, capsys):
    from test_export import _glyph_folder

    runs = []
    for algorithm in ("protonet", "ridge"):
        run = str(tmp_path / algorithm)
        assert main(["train", "--algorithm", algorithm, "--steps", "2", "--width", "8",
                     "--val-every", "2", "--val-episodes", "2", "--episodes", "2",
                     "--ways", "3", "--out", run, "--no-progress"]) == 0
        runs.append(run)
    ensemble = str(tmp_path / "ensemble")
    assert main(["ensemble", *runs, "--out", ensemble]) == 0
    facts = json.load(open(os.path.join(ensemble, "ensemble.json")))
    assert facts["members"] == [os.path.join("..", "protonet"), os.path.join("..", "ridge")]
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", ensemble, "--episodes", "4", "--tta",
                 "--no-progress"]) == 0
    result = json.load(open(os.path.join(ensemble, "evaluation.json")))
    assert result["algorithm"] == "ensemble(protonet+ridge)"
    assert 0 <= result["accuracy"] <= 1 and 0 <= result["tta_accuracy"] <= 1
    support = tmp_path / "support"
    _glyph_folder(support, ["a", "b", "c"], 2)
    assert main(["predict", "--checkpoint", ensemble, "--support", str(support),
                 "--query", str(support / "a")]) == 0
    assert main(["adapt", "--checkpoint", ensemble, "--support", str(support), "--name", "ens",
                 "--export-dir", str(tmp_path / "e"), "--format", "all"]) == 0
    written = json.load(open(tmp_path / "e" / "ens" / "1" / "assets.extra" / "tfmeta.json"))
    assert set(written["formats"]) == {"onnx", "tflite"}
    assert max(written["max_abs_difference"].values()) <= 1e-4
    assert main(["export-fewshot", "--checkpoint", ensemble, "--name", "fs",
                 "--export-dir", str(tmp_path / "e")]) == 0
    capsys.readouterr()
    # one line for what cannot be an ensemble
    assert main(["ensemble", runs[0], "--out", str(tmp_path / "one")]) == 2
    assert "at least 2 runs" in capsys.readouterr().err
    assert main(["ensemble", runs[0], str(tmp_path / "nothing"), "--out",
                 str(tmp_path / "two")]) == 2
    assert "not a tfmeta run" in capsys.readouterr().err
    os.rename(runs[1], runs[1] + "-moved")
    assert main(["evaluate", "--checkpoint", ensemble, "--episodes", "2", "--no-progress"]) == 2
    assert "member run" in capsys.readouterr().err
