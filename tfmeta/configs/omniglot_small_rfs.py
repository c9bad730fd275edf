"""RFS (Tian et al., ECCV 2020, arXiv:2003.11539) on the omniglot-small benchmark: Baseline's
training recipe (``omniglot_small_baseline``: a classifier of every training class), then a
logistic regression on L2-normalised features for each support set.

    tfmeta benchmark omniglot-small --algorithm rfs --data-dir DIR
    tfmeta train --config omniglot_small_rfs --dataset omniglot-small:DIR --out RUN

A self-distillation generation (the paper's RFS-distill) trains this recipe again with a
trained run as its teacher::

    tfmeta benchmark omniglot-small --algorithm rfs --data-dir DIR --out GEN0
    tfmeta benchmark omniglot-small --algorithm rfs --data-dir DIR --out GEN1 \
        --set learner.teacher=GEN0

Measured (600 test episodes; 5-way 1-shot, 20-way 1-shot, 20-way 1-shot within an alphabet):
generation 0 92.83 / 80.55 / 69.36 %, generation 1 93.62 / 82.07 / 71.18 % (README, Benchmarks).

Differences from the paper: its training recipe is SGD with momentum and weight decay on
mini-ImageNet-sized data.
"""

from tfmeta.configs import omniglot_small_baseline


def config():
    return omniglot_small_baseline.config().with_values({"algorithm": "rfs"})
