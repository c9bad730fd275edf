"""``tfmeta train --strategy multiworker``: two worker processes on 127.0.0.1 (TF_CONFIG), started
by the test, meta-train to the same weights and test result as one process on one device, only the
chief writes the run directory, and a run whose worker is killed fails within the collective
timeout and resumes from the last checkpoint when the workers are started again."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

ARGS = ["--algorithm", "maml", "--dataset", "glyphs", "--width", "8", "--meta-batch", "2",
        "--val-every", "2", "--val-episodes", "4", "--episodes", "4", "--inner-steps", "1",
        "--checkpoint-every", "1", "--no-progress", "--deterministic"]


def _ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _command(out, steps, *extra):
    return [sys.executable, "-m", "tfmeta", "train", *ARGS, "--steps", str(steps), "--out",
            str(out), *extra]


def _env(ports=None, index=None, **extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **extra)
    if ports is not None:
        env["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                                       "task": {"type": "worker", "index": index}})
    return env


def _workers(out, steps, *extra):
    ports = _ports(2)
    return [subprocess.Popen(_command(out, steps, "--strategy", "multiworker", *extra),
                             env=_env(ports, i), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for i in range(2)]


def _weights(out, kind="latest"):
    import tensorflow as tf

    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(
        os.path.join(out, "checkpoints", kind)))
    return {k: reader.get_tensor(k) for k in sorted(reader.get_variable_to_shape_map())
            if "CHECKPOINTABLE_OBJECT_GRAPH" not in k and "moving" not in k}


def test_two_workers_train_like_one_process_and_only_the_chief_writes(tmp_path):
    workers = _workers(tmp_path / "two", 4)
    one = subprocess.run(_command(tmp_path / "one", 4), env=_env(), capture_output=True,
                         text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-2000:]
    for worker in workers:
        _, stderr = worker.communicate(timeout=600)
        assert worker.returncode == 0, stderr[-2000:]
    # BatchNorm's moving statistics are averaged across replicas (README, Scaling out): the
    # weights and the optimizer state are compared.
    single, multi = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert single.keys() == multi.keys() and len(single) > 20
    for key in single:
        np.testing.assert_allclose(multi[key], single[key], rtol=1e-4, atol=1e-5, err_msg=key)
    results = [json.load(open(tmp_path / n / "results.json")) for n in ("one", "two")]
    assert results[1]["accuracy"] == pytest.approx(results[0]["accuracy"], abs=1e-6)
    assert json.load(open(tmp_path / "two" / "environment.json"))["replicas"] == 2
    written = sorted(os.listdir(tmp_path / "two"))
    assert written == sorted(os.listdir(tmp_path / "one")), written  # nothing from the worker


def test_a_killed_worker_fails_the_job_which_resumes_from_the_last_checkpoint(tmp_path):
    out = tmp_path / "run"
    chief, worker = _workers(out, 150, "--val-every", "1000")
    latest = out / "checkpoints" / "latest"
    deadline = time.time() + 300
    while not (latest.exists() and any(f.endswith(".index") for f in os.listdir(latest))):
        assert time.time() < deadline and chief.poll() is None, chief.communicate()[1][-2000:]
        time.sleep(0.5)
    worker.send_signal(signal.SIGKILL)
    worker.communicate()
    began = time.time()
    _, stderr = chief.communicate(timeout=300)
    assert chief.returncode == 1
    message = stderr.strip().splitlines()[-1]
    assert message.startswith("tfmeta: error: a worker of the cluster stopped") and (
        "start every worker again with the same command to resume from " in message), message
    assert time.time() - began < 120, "the chief waited for the killed worker"
    import tensorflow as tf

    step = int(tf.train.load_checkpoint(tf.train.latest_checkpoint(latest)).get_tensor(
        "step/.ATTRIBUTES/VARIABLE_VALUE"))
    assert step >= 1
    for process in _workers(out, 150, "--val-every", "1000"):
        stdout, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr[-2000:]
        assert f"resuming from {latest}{os.sep}ckpt-" in stdout, stdout
    results = json.load(open(out / "results.json"))
    assert results["checkpoint"].endswith(f"best{os.sep}ckpt-150"), results  # the last step's
    assert 0.2 < results["accuracy"] <= 1, results  # above 5-way chance after 150 steps


def test_two_workers_skip_nonfinite_meta_batches_whole(tmp_path):
    """The NaN and overflow meta-batches of tests/nonfinite_check.py under a two-worker
    MultiWorkerMirroredStrategy: both workers skip both (the decision is taken on all-reduced
    values, so they agree and no collective waits), nothing of them is kept, and the chief's
    checkpoints hold only finite values."""
    from test_faults import nonfinite_result

    ports = _ports(2)
    script = os.path.join(os.path.dirname(__file__), "nonfinite_check.py")
    workers = [subprocess.Popen([sys.executable, script, "multiworker", str(tmp_path / "run")],
                                env=_env(ports, i), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for i in range(2)]
    results = []
    for worker in workers:
        stdout, stderr = worker.communicate(timeout=600)
        assert worker.returncode == 0, stderr[-3000:]
        results.append(nonfinite_result(stdout))
    assert [r["replicas"] for r in results] == [2, 2]
    assert results[0]["checkpoints_finite"] == [True] * 3, results[0]  # the chief's
    assert "checkpoints_finite" not in results[1]  # the other worker writes no run directory
