"""Siamese networks on the omniglot-small benchmark (:mod:`tfmeta.benchmark`): Koch, Zemel &
Salakhutdinov (ICML 2015 deep learning workshop), a learned same / different score of image
pairs, a query taking the class of its best-scoring support image (20-way 1-shot on Omniglot:
92.0 %; Vinyals et al. 2016 report 97.3 / 98.4 / 88.2 / 97.0 % for 5-way 1/5-shot, 20-way
1/5-shot), on Prototypical Networks' omniglot-small recipe (``omniglot_small_protonet``: Conv4 64,
28x28 with rotations, Koch et al.'s affine augmentation, Adam 1e-3).

    tfmeta benchmark omniglot-small --algorithm siamese --data-dir DIR
    tfmeta train --config omniglot_small_siamese --dataset omniglot-small:DIR --out RUN

Differences from the paper: pairs come from 20-way 1-shot training episodes with 5 queries per
class, and the backbone is Conv4 instead of Koch et al.'s larger convnet on 105x105 images.
"""

import dataclasses

from tfmeta.configs import omniglot_small_protonet


def config():
    protonet = omniglot_small_protonet.config()
    return dataclasses.replace(protonet, algorithm="siamese", learner={}, train_ways=20)
