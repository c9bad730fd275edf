"""Reptile on the omniglot-small benchmark (:mod:`tfmeta.benchmark`): the paper's Omniglot recipe
(``reptile_omniglot``: Nichol et al. 2018, 5 inner Adam steps on minibatches of 10 from 10 images
per class, 50 test-time steps) in a 2-core CPU budget, starting from a backbone pre-trained on
every training class (Chen et al. 2019), with Koch et al.'s affine augmentation.

    tfmeta benchmark omniglot-small --algorithm reptile --data-dir DIR
    tfmeta train --config omniglot_small_reptile --dataset omniglot-small:DIR --out RUN

``tfmeta train`` tests the 5-way 1-shot setting only; the benchmark, every setting the model
can run: trained for 5 ways, the protocol's 5-way settings. Difference from the
paper: 3,000 meta-iterations instead of 100,000 (epsilon still annealed to 0 over the run).
"""

from tfmeta.configs import reptile_omniglot


def config():
    return reptile_omniglot.config().with_values({
        "data.dataset": "omniglot-small:DATA_DIR", "data.augment": "affine",
        "train.steps": 3000, "train.val_every": 500, "train.checkpoint_every": 500,
        "train.pretrain_steps": 3000})
