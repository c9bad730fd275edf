"""Baseline (Chen et al., ICLR 2019, arXiv:1904.04232) on the omniglot-small benchmark
(:mod:`tfmeta.benchmark`): Conv4 64 trained as an ordinary classifier of every training class (the
characters of the five small1 alphabets with their 90-degree rotations, 488 classes) on minibatches
of 128 images with Koch et al.'s affine augmentation, Adam 1e-3 decayed by a cosine over 6,000
steps (about the images Prototypical Networks' preset sees); each support set gets a new linear
head (:mod:`tfmeta.learners.baseline`).

    tfmeta benchmark omniglot-small --algorithm baseline --data-dir DIR
    tfmeta train --config omniglot_small_baseline --dataset omniglot-small:DIR --out RUN

Differences from the paper: Adam 1e-3 with a cosine decay and minibatches of 128 (the paper: Adam
1e-3, batches of 16, 400 epochs of full Omniglot); the support head by full-batch gradient steps
instead of 100 epochs of SGD.
"""

import dataclasses

from tfmeta.configs import omniglot_small_protonet


def config():
    protonet = dataclasses.replace(omniglot_small_protonet.config(), algorithm="baseline",
                                   learner={}, train_ways=None)
    return protonet.with_values({
        "train.steps": 6000, "train.meta_batch": 1, "train.pretrain_batch": 128,
        "train.lr_schedule": "cosine", "train.val_every": 500, "train.checkpoint_every": 500})
