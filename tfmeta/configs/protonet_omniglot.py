"""Prototypical Networks on Omniglot, 5-way 1-shot, as in Snell, Swersky & Zemel (NeurIPS 2017,
arXiv:1703.05175), section 3.1: 28x28 images with 90-degree rotations as new classes, Conv4 of 64
filters, squared Euclidean distance, training episodes of 60 classes with 5 query images each (wider
than the 5-way tests), one episode per step, Adam 1e-3.

    tfmeta train --config protonet_omniglot --out runs/protonet_omniglot

Differences: the paper halves the learning rate every 2000 episodes (here constant); the number of
training episodes is set here (20,000), the paper trains to a validation plateau. ``omniglot`` is
TFDS's background / evaluation split; the paper's (Vinyals et al.'s 1,200 training and 423 test
characters, listed in Snell et al.'s ``splits/vinyals/{train,val,test}.txt``) is
``--class-splits DIR`` with those files (:mod:`tfmeta.data.class_splits`). With it the paper
reports 98.8 / 99.7 % (5-way 1 / 5-shot) and 96.0 / 98.9 % (20-way).
"""

from tfmeta.data import DataConfig, EpisodeConfig
from tfmeta.run import RunConfig, TrainConfig


def config() -> RunConfig:
    return RunConfig(
        algorithm="protonet", data=DataConfig("omniglot", rotations=True),
        episode=EpisodeConfig(5, 1, 5), train_ways=60, width=64,
        learner={"distance": "euclidean"},
        train=TrainConfig(steps=20_000, meta_batch=1, val_every=1000, checkpoint_every=1000))
