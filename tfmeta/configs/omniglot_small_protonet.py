"""Prototypical Networks on the omniglot-small benchmark (:mod:`tfmeta.benchmark`): the paper's
Omniglot recipe (``protonet_omniglot``: Snell et al. 2017, Conv4 64, 28x28 with rotations,
60-way training episodes of 1 shot and 5 queries, Adam 1e-3, one episode per step) in a 2-core
CPU budget: 2,500 episodes (15 minutes on 2 cores), with Koch et al.'s affine augmentation.

    tfmeta benchmark omniglot-small --algorithm protonet --data-dir DIR
    tfmeta train --config omniglot_small_protonet --dataset omniglot-small:DIR --out RUN

``tfmeta train`` tests the 5-way 1-shot setting only; the benchmark, every setting.
Measured alternatives that did not do better on this protocol (README, Benchmarks): 56x56 images
with 20-way training, and pre-training the backbone on every training class.
"""

from tfmeta.configs import protonet_omniglot


def config():
    return protonet_omniglot.config().with_values({
        "data.dataset": "omniglot-small:DATA_DIR", "data.augment": "affine",
        "train.steps": 2500, "train.val_every": 250, "train.checkpoint_every": 250})
