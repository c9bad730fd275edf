"""Reptile on Omniglot, 5-way 1-shot, as in Nichol, Achiam & Schulman (2018, arXiv:1803.02999)
and its code (github.com/openai/supervised-reptile, the transductive 5-way Omniglot command):
28x28 images with rotations, Conv4 of 64 filters, 5 inner Adam steps (beta1 = 0, lr 0.001) on
minibatches of 10 from 10 images per class, meta-batch 5, outer step epsilon 1.0 annealed to 0
over 100,000 meta-iterations, 50 test-time steps on minibatches of 5.

    tfmeta train --config reptile_omniglot --out runs/reptile_omniglot

Difference: the inner Adam's moments start from zero for every task (see tfmeta.learners.reptile).
``omniglot`` is TFDS's background / evaluation split; the paper's (1,200 random characters for
training, 423 for test) is given as files with ``--class-splits DIR``
(:mod:`tfmeta.data.class_splits`). The paper reports, transductive, 97.68 / 99.48 % (5-way 1 /
5-shot) and 89.43 / 97.12 % (20-way).
"""

from tfmeta.data import DataConfig, EpisodeConfig
from tfmeta.run import RunConfig, TrainConfig


def config() -> RunConfig:
    return RunConfig(
        algorithm="reptile", data=DataConfig("omniglot", rotations=True),
        episode=EpisodeConfig(5, 1, 15), width=64,
        learner={"inner_steps": 5, "inner_lr": 0.001, "inner_batch": 10, "train_shots": 10,
                 "epsilon": 1.0, "test_inner_steps": 50, "test_inner_batch": 5},
        train=TrainConfig(steps=100_000, meta_batch=5, val_every=1000, checkpoint_every=1000))
