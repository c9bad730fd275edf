"""SNAIL on the omniglot-small benchmark (:mod:`tfmeta.benchmark`): Mishra, Rohaninejad, Chen &
Abbeel (ICLR 2018, arXiv:1707.03141), a temporal-convolution and attention model that reads the
labelled support set and classifies each query from that memory (full Omniglot: 99.07 / 99.78 /
97.64 / 99.36 % for 5-way 1/5-shot, 20-way 1/5-shot), with MAML's omniglot-small data (28x28 with
rotations, affine augmentation) and Conv4 64 embeddings.

    tfmeta benchmark omniglot-small --algorithm snail --data-dir DIR
    tfmeta train --config omniglot_small_snail --dataset omniglot-small:DIR --out RUN

Trained for 5 ways (its label inputs are 5 wide): the benchmark's 20-way settings need
``--set episode.ways=20``. Differences from the paper: meta-batch 8 and 1,000
meta-iterations (the budget).
"""

import dataclasses

from tfmeta.configs import omniglot_small_maml


def config():
    maml = omniglot_small_maml.config()
    return dataclasses.replace(maml, algorithm="snail", learner={}).with_values(
        {"train.lr_schedule": "constant", "train.steps": 1000})
