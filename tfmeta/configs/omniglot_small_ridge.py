"""R2-D2 (ridge regression head) on the omniglot-small benchmark (:mod:`tfmeta.benchmark`):
Bertinetto, Henriques, Torr & Vedaldi (ICLR 2019, arXiv:1805.08136), a closed-form ridge
regression classifier on the support embeddings, differentiated through (full Omniglot: 98.6 /
99.7 / 94.7 / 98.9 % for 5-way 1/5-shot, 20-way 1/5-shot), on Prototypical Networks'
omniglot-small recipe (``omniglot_small_protonet``: Conv4 64, 28x28 with rotations, affine
augmentation, Adam 1e-3).

    tfmeta benchmark omniglot-small --algorithm ridge --data-dir DIR
    tfmeta train --config omniglot_small_ridge --dataset omniglot-small:DIR --out RUN

Differences from the paper: 20-way 1-shot training episodes with 5 queries per class, Conv4 64
instead of the paper's wider 4-layer network, a fixed regulariser (``learner.l2``).
"""

import dataclasses

from tfmeta.configs import omniglot_small_protonet


def config():
    protonet = omniglot_small_protonet.config()
    return dataclasses.replace(protonet, algorithm="ridge", learner={}, train_ways=20)
