"""Relation Networks on the omniglot-small benchmark (:mod:`tfmeta.benchmark`): Sung, Yang, Zhang,
Xiang, Torr & Hospedales (CVPR 2018, arXiv:1711.06025), a learned relation module scoring each
query against each class's embedding (full Omniglot: 99.6 / 99.8 / 97.6 / 99.1 % for 5-way
1/5-shot, 20-way 1/5-shot), on Prototypical Networks' omniglot-small recipe
(``omniglot_small_protonet``: Conv4 64, 28x28 with rotations, affine augmentation, Adam 1e-3).

    tfmeta benchmark omniglot-small --algorithm relation --data-dir DIR
    tfmeta train --config omniglot_small_relation --dataset omniglot-small:DIR --out RUN

Differences from the paper: training episodes are 20-way 1-shot with 5 queries per class (the
paper trains 20-way models with 10 queries), 2,500 episodes instead of 1,000,000; a class's K
support maps are averaged, not summed (``learner.shot_pooling=mean``: the same in 1-shot training,
and the model trained 1-shot serves 5-shot episodes; summed, it fell to 46 % at 5-shot).
"""

import dataclasses

from tfmeta.configs import omniglot_small_protonet


def config():
    protonet = omniglot_small_protonet.config()
    return dataclasses.replace(protonet, algorithm="relation",
                               learner={"shot_pooling": "mean"}, train_ways=20)
