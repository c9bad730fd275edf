"""Prototypical Networks on mini-ImageNet, 5-way 1-shot, as in Snell, Swersky & Zemel (NeurIPS
2017, arXiv:1703.05175), section 3.2: Ravi & Larochelle's split (64 / 16 / 20 classes), 84x84 RGB
images, Conv4 of 64 filters, squared Euclidean distance, 30-way training episodes with 15 queries
per class, Adam 1e-3. The paper reports 49.42 +- 0.78 % (5-way 1-shot); 5-shot models (20-way
training episodes of 5 shots: ``--set train_ways=20 --shots 5``) reach 68.20 +- 0.66 %.

    tfmeta train --config protonet_miniimagenet --dataset mini-imagenet:DIR --out RUN

DIR: a local mini-ImageNet (:mod:`tfmeta.data.mini_imagenet`; ImageNet's licence keeps it from
being downloaded for you). Differences: the paper halves the learning rate every 2,000 episodes
and stops on a validation plateau; here the learning rate is constant for 40,000 episodes.
"""

from tfmeta.data import DataConfig, EpisodeConfig
from tfmeta.run import RunConfig, TrainConfig


def config() -> RunConfig:
    return RunConfig(
        algorithm="protonet", data=DataConfig("mini-imagenet:DATA_DIR", image_size=84, channels=3),
        episode=EpisodeConfig(5, 1, 15), train_ways=30, width=64,
        learner={"distance": "euclidean"},
        train=TrainConfig(steps=40_000, meta_batch=1, val_every=1000, checkpoint_every=1000))
