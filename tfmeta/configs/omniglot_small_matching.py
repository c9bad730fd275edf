"""Matching Networks on the omniglot-small benchmark (:mod:`tfmeta.benchmark`): Vinyals, Blundell,
Lillicrap, Kavukcuoglu & Wierstra (NeurIPS 2016, arXiv:1606.04080), attention over the support set
by cosine similarity, without full context embeddings (full Omniglot: 98.1 / 98.9 / 93.8 / 98.5 %
for 5-way 1/5-shot, 20-way 1/5-shot), on Prototypical Networks' omniglot-small recipe
(``omniglot_small_protonet``: Conv4 64, 28x28 with rotations, affine augmentation, Adam 1e-3).

    tfmeta benchmark omniglot-small --algorithm matching --data-dir DIR
    tfmeta train --config omniglot_small_matching --dataset omniglot-small:DIR --out RUN

Differences from the paper: training episodes are 20-way 1-shot with 5 queries per class (the
paper matches training ways to the test's), 2,500 episodes (the budget).
"""

import dataclasses

from tfmeta.configs import omniglot_small_protonet


def config():
    protonet = omniglot_small_protonet.config()
    return dataclasses.replace(protonet, algorithm="matching", learner={}, train_ways=20)
