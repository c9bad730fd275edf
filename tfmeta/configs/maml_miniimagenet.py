"""MAML on mini-ImageNet, 5-way 1-shot, as in Finn, Abbeel & Levine (ICML 2017, arXiv:1703.03400),
section 5.2 and its code (github.com/cbfinn/maml): Ravi & Larochelle's split, 84x84 RGB images,
Conv4 of 32 filters, 5 inner steps of alpha 0.01 (10 at test), meta-batch 4, Adam 1e-3, 60,000
meta-iterations, 15 queries per class. The paper reports 48.70 +- 1.84 % (5-way 1-shot) and, with
``--shots 5 --meta-batch 2``, 63.11 +- 0.92 % (first-order: 48.07 / 63.15 %).

    tfmeta train --config maml_miniimagenet --dataset mini-imagenet:DIR --out RUN

DIR: a local mini-ImageNet (:mod:`tfmeta.data.mini_imagenet`). Difference: the inner loss is the
support loss averaged over images, as in the paper's code for mini-ImageNet.
"""

from tfmeta.data import DataConfig, EpisodeConfig
from tfmeta.run import RunConfig, TrainConfig


def config() -> RunConfig:
    return RunConfig(
        algorithm="maml", data=DataConfig("mini-imagenet:DATA_DIR", image_size=84, channels=3),
        episode=EpisodeConfig(5, 1, 15), width=32,
        learner={"inner_steps": 5, "inner_lr": 0.01, "test_inner_steps": 10,
                 "inner_reduction": "mean"},
        train=TrainConfig(steps=60_000, meta_batch=4, val_every=1000, checkpoint_every=1000))
