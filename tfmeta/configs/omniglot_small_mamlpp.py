"""MAML++ on the omniglot-small benchmark (:mod:`tfmeta.benchmark`): Antoniou et al. 2019, "How
to train your MAML" (5 inner steps of 0.1 at training and test, multi-step loss, learned per-step
rates, per-step BatchNorm weights, a cosine outer schedule) in the MAML preset's 2-core CPU budget (meta-batch 8, affine
augmentation).

    tfmeta benchmark omniglot-small --algorithm maml++ --data-dir DIR
    tfmeta train --config omniglot_small_mamlpp --dataset omniglot-small:DIR --out RUN

Measured (600 test episodes, as deployed; README, Benchmarks): 90.87 % 5-way 1-shot (transductive
92.39 %), 97.33 % 5-way 5-shot, against MAML's preset's 80.74 / 83.66 %.

Differences from the paper: no per-step BatchNorm running statistics (the adapted classifier
normalises with its support set's statistics, as MAML's), no derivative-order annealing (``--set learner.first_order_share=0.3`` turns it on), 1,500 meta-iterations.
"""

from tfmeta.data import DataConfig, EpisodeConfig
from tfmeta.run import RunConfig, TrainConfig


def config():
    return RunConfig(
        algorithm="maml++", data=DataConfig("omniglot-small:DATA_DIR", augment="affine"),
        episode=EpisodeConfig(ways=5, shots=1, queries=15),
        learner={"per_step_batchnorm": True},
        train=TrainConfig(steps=1500, meta_batch=8, val_every=250, checkpoint_every=250,
                          lr_schedule="cosine"))
