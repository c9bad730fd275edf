"""MetaOptNet-SVM on the omniglot-small benchmark (:mod:`tfmeta.benchmark`): Lee, Maji, Ravichandran
& Soatto (CVPR 2019, arXiv:1904.03758), a multi-class linear SVM fitted to the support embeddings
and differentiated through (the paper reports mini-ImageNet, tieredImageNet, CIFAR-FS and FC100,
not Omniglot), on Prototypical Networks' omniglot-small recipe (``omniglot_small_protonet``: Conv4
64, 28x28 with rotations, affine augmentation, Adam 1e-3).

    tfmeta benchmark omniglot-small --algorithm svm --data-dir DIR
    tfmeta train --config omniglot_small_svm --dataset omniglot-small:DIR --out RUN

Differences from the paper: Conv4 64 instead of ResNet-12, 20-way 1-shot training episodes with 5
queries per class.
"""

import dataclasses

from tfmeta.configs import omniglot_small_protonet


def config():
    protonet = omniglot_small_protonet.config()
    return dataclasses.replace(protonet, algorithm="svm", learner={}, train_ways=20)
