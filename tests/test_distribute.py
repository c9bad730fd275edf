"""tf.distribute: a MirroredStrategy over 2 logical CPU devices meta-trains to the same weights as
one device (same seed, same meta-batches), for MAML, Prototypical Networks, a MetaOptNet head,
Reptile and Baseline (a classifier of every training class), and its test step gathers the same episodes (BatchNorm's moving statistics, averaged
across replicas, are left out: README, Scaling out). Run in a fresh process
(``tests/replicas_check.py``): logical devices must be set before TensorFlow starts."""

import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(__file__)


def test_two_replicas_train_like_one():
    r = subprocess.run([sys.executable, os.path.join(HERE, "replicas_check.py"),
                        "maml,protonet,ridge,reptile,reptile-adam,baseline", "2"],
                       capture_output=True, text=True, timeout=900,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert r.returncode == 0, r.stderr[-3000:]
    results = {line["case"]: line for line in map(json.loads, (
        x for x in r.stdout.splitlines() if x.startswith("{")))}
    assert set(results) == {"maml", "protonet", "ridge", "reptile", "reptile-adam", "baseline"}
    for case, line in results.items():
        assert line["devices"] == 2
        assert line["one_losses"][0] == pytest.approx(line["mirrored_losses"][0], rel=1e-5,
                                                      abs=1e-6), line
        assert line["one_test_accuracy"] == line["mirrored_test_accuracy"], line
        if case != "reptile-adam":  # outer SGD: the weights moved by the meta-gradients
            assert line["weights_moved"] > 1e-3, line
            assert line["weight_difference"] < 1e-6 + 1e-5 * line["weights_moved"], line


def test_strategies_that_cannot_run_are_one_clear_line(monkeypatch):
    from tfmeta.distribute import make_strategy
    from tfmeta.errors import ConfigError

    monkeypatch.delenv("TF_CONFIG", raising=False)
    for name, message in (("tpu", "not supported yet"), ("multiworker", "reads the cluster from "
                                                                        "TF_CONFIG: set it to"),
                          ("mirored", "unknown strategy 'mirored'")):
        with pytest.raises(ConfigError, match=message) as err:
            make_strategy(name)
        assert "\n" not in str(err.value)
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["127.0.0.1:1"]}, '
                                    '"task": {"type": "ps", "index": 0}}')
    with pytest.raises(ConfigError, match="tfmeta runs on 'worker' and 'chief' tasks"):
        make_strategy("multiworker")
