"""``tfmeta train --deterministic``: the same run twice gives the same losses and weights, and the
run directory records versions, devices and the determinism setting (``environment.json``)."""

import json
import os
import subprocess
import sys

import numpy as np


def _train(out, *extra):
    r = subprocess.run([sys.executable, "-m", "tfmeta", "train", "--algorithm", "maml",
                        "--dataset", "glyphs", "--width", "8", "--steps", "3", "--meta-batch", "2",
                        "--val-every", "3", "--val-episodes", "4", "--episodes", "4",
                        "--inner-steps", "2", "--out", str(out), "--no-progress", *extra],
                       capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert r.returncode == 0, r.stderr[-2000:]


def _weights(out):
    import tensorflow as tf

    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(
        os.path.join(out, "checkpoints", "latest")))
    return {k: reader.get_tensor(k) for k in sorted(reader.get_variable_to_shape_map())
            if "CHECKPOINTABLE_OBJECT_GRAPH" not in k}  # weights, optimizer state, step


def test_deterministic_runs_repeat_exactly(tmp_path):
    for name in ("a", "b"):
        _train(tmp_path / name, "--deterministic")
    first, second = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert first.keys() == second.keys() and len(first) > 30
    for key in first:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)
    results = [json.load(open(tmp_path / n / "results.json")) for n in ("a", "b")]
    assert results[0]["loss"] == results[1]["loss"]
    environment = json.load(open(tmp_path / "a" / "environment.json"))
    assert environment["deterministic_ops"] is True and environment["replicas"] == 1
    assert environment["versions"]["tensorflow"].startswith("2.")
    assert any("CPU" in d for d in environment["devices"])
    assert json.load(open(tmp_path / "a" / "run.json"))["train"]["seed"] == 0
