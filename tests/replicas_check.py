"""Run by tests/test_distribute.py in a fresh process (logical devices must be set before
TensorFlow starts): meta-train a learner (CASES) for two steps of outer SGD on one device and with a
MirroredStrategy over REPLICAS logical CPU devices, from the same weights and meta-batches, and
print one JSON line per case: the largest difference of the weights after the steps (with SGD they
move by the meta-gradients, all-reduced), how far the weights moved, and both runs' figures.

    python tests/replicas_check.py CASE[,CASE...] [REPLICAS]
"""

import contextlib
import json
import sys

import numpy as np
import tensorflow as tf

cases = sys.argv[1].split(",")
replicas = int(sys.argv[2]) if len(sys.argv) > 2 else 2
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)

import keras  # noqa: E402

from tfmeta.data import EpisodeConfig  # noqa: E402
from tfmeta.learners import ALGORITHMS, make_config  # noqa: E402
from tfmeta.models import build_model  # noqa: E402

CASES = {"maml": ("maml", {"inner_steps": 2}),  # case: (algorithm, options)
         "protonet": ("protonet", {}),
         "ridge": ("ridge", {}),  # a MetaOptNet head (ridge regression; the SVM takes minutes here)
         # Reptile's inner Adam turns rounding-level differences of tiny gradients into steps of
         # its learning rate: SGD shows the outer update exactly, Adam on minibatches checks that
         # each task gets its seed (the first step's loss).
         "reptile": ("reptile", {"inner_optimizer": "sgd", "inner_lr": 0.1, "inner_batch": None,
                                 "test_inner_batch": None, "train_shots": 3}),
         "reptile-adam": ("reptile", {"inner_batch": 2, "train_shots": 3}),
         # a classifier of every training class: its minibatches split over the replicas as
         # tasks do (here the episodes' images and labels stand for them)
         "baseline": ("baseline", {"classes": 6})}
episode = EpisodeConfig(3, 1, 2)
rng = np.random.default_rng(0)
tasks = 2 * replicas


def batch():
    return (tf.constant(rng.random((tasks, 3, 16, 16, 1), np.float32)),
            tf.constant(np.tile(np.arange(3, dtype=np.int32), (tasks, 1))),
            tf.constant(rng.random((tasks, 6, 16, 16, 1), np.float32)),
            tf.constant(np.tile(np.arange(3, dtype=np.int32).repeat(2), (tasks, 1))))


def run(case, strategy, batches) -> dict:
    """A test step, then a step on each meta-batch with outer SGD (the weights move by exactly
    the meta-gradient, all-reduced)."""
    algorithm, options = CASES[case]
    keras.utils.set_random_seed(0)
    cls, fixed = ALGORITHMS[algorithm]
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = build_model("conv4", (16, 16, 1), cls.backbone_output, episode.ways, width=4)
        # one task at a time per replica: the replicas share 2 cores
        learner = cls(model, make_config(algorithm, **options, **fixed), episode=episode,
                      optimizer=keras.optimizers.SGD(0.5), strategy=strategy, parallel_tasks=1)
    initial = [np.array(v.numpy()) for v in learner.meta_variables]
    # The test step first: training averages BatchNorm's moving statistics across replicas (one
    # device applies the tasks' updates in turn), and the metric learners test with them.
    test = learner.meta_test_step(batches[0])
    losses = [float(learner.meta_train_step(b)["loss"]) for b in batches]
    return {"losses": losses, "initial": initial,
            "weights": [np.array(v.numpy()) for v in learner.meta_variables],
            "test_accuracy": np.asarray(test["accuracy"]).tolist()}


def largest(one, other, name):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(one[name], other[name]))


mirrored = tf.distribute.MirroredStrategy([f"CPU:{i}" for i in range(replicas)])
for case in cases:
    batches = [batch() for _ in range(2)]
    one, many = run(case, None, batches), run(case, mirrored, batches)
    print(json.dumps({
        "case": case, "replicas": replicas, "devices": len(tf.config.list_logical_devices("CPU")),
        "weight_difference": largest(one, many, "weights"),
        "weights_moved": max(float(np.max(np.abs(a - b)))
                             for a, b in zip(one["weights"], one["initial"])),
        **{f"{k}_{f}": v[f] for k, v in (("one", one), ("mirrored", many))
           for f in ("losses", "test_accuracy")}}), flush=True)
