"""Meta-SGD on the omniglot-small benchmark (:mod:`tfmeta.benchmark`): Li, Zhou, Chen & Li
(2017, arXiv:1707.09835): one inner step with a learned learning rate per parameter (full
Omniglot: 99.53 / 99.93 / 95.93 / 98.97 % for 5-way 1/5-shot, 20-way 1/5-shot), on MAML's
omniglot-small recipe (``omniglot_small_maml``: 5-way 1-shot, Conv4 64, affine augmentation,
cosine outer learning rate).

    tfmeta benchmark omniglot-small --algorithm metasgd --data-dir DIR
    tfmeta train --config omniglot_small_metasgd --dataset omniglot-small:DIR --out RUN

Trained for 5 ways: the benchmark's 20-way settings need ``--set episode.ways=20``. Difference
from the paper: meta-batch 8 and 1,000 meta-iterations (the budget).
"""

import dataclasses

from tfmeta.configs import omniglot_small_maml


def config():
    maml = omniglot_small_maml.config()  # its learner options are MAML's: Meta-SGD keeps its own
    return dataclasses.replace(maml, algorithm="metasgd", learner={}).with_values(
        {"train.steps": 1000})
