"""Tasks side by side (issue 10): the outer step's parallel_tasks changes the speed, never the
update; tfmeta.threads shares the cores among the tasks before TensorFlow starts."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tfmeta.data import EpisodeConfig, EpisodeSampler
from tfmeta.errors import ConfigError
from tfmeta.learners import create

EPISODE = EpisodeConfig(3, 1, 2)


def _trained(algorithm, parallel_tasks, batches):
    keras.utils.set_random_seed(0)
    options = ({"inner_steps": 2, "train_shots": 3, "inner_batch": 4} if algorithm == "reptile"
               else {})
    learner = create(algorithm, "conv4", episode=EPISODE, backbone_width=8,
                     parallel_tasks=parallel_tasks, **options)
    losses = [float(learner.meta_train_step(batch)["loss"]) for batch in batches]
    return learner, losses


@pytest.mark.parametrize("algorithm", ["maml", "protonet", "reptile"])
def test_the_update_does_not_depend_on_the_tasks_in_flight(algorithm, small_glyphs):
    """Two meta-steps of 4 tasks, one task at a time or 4 at once: the same losses, weights and
    BatchNorm statistics, bit for bit (the sum over tasks is carried in task order; each task's
    BatchNorm updates come in task order too)."""
    batches = list(EpisodeSampler(small_glyphs, EPISODE, meta_batch=4, seed=3).dataset(
        num_batches=2))
    one, one_losses = _trained(algorithm, 1, batches)
    four, four_losses = _trained(algorithm, 4, batches)
    assert one_losses == four_losses
    for a, b in zip(one.model.weights, four.model.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_parallel_tasks_must_be_a_positive_integer():
    with pytest.raises(ConfigError, match="parallel_tasks must be a positive integer"):
        create("protonet", "conv4", episode=EPISODE, backbone_width=8, parallel_tasks=0)


def test_threads_are_shared_among_tasks_only_before_tensorflow_starts():
    code = ("import os; os.sched_setaffinity(0, {0}) if hasattr(os, 'sched_setaffinity') else None\n"
            "import tfmeta.threads as threads\n"
            "import tensorflow as tf\n"
            "first = threads.configure_threads(2)\n"
            "print(threads.available_cores(), first,\n"
            "      tf.config.threading.get_intra_op_parallelism_threads())\n"
            "tf.constant(1.0) + 1\n"
            "threads.available_cores = lambda: 8  # would be 4 threads: too late to change\n"
            "print(threads.configure_threads(2))\n")
    env = {k: v for k, v in os.environ.items() if k != "TF_NUM_INTRAOP_THREADS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stdout.split()
    assert out == ["1", "1", "1", "None"]  # 1 core // 2 tasks -> 1 thread; too late -> None
    env["TF_NUM_INTRAOP_THREADS"] = "2"  # the user's choice wins
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stdout.split()
    assert out[1] == "None"
