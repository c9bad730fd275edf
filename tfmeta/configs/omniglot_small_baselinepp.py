"""Baseline++ (Chen et al., ICLR 2019, arXiv:1904.04232) on the omniglot-small benchmark: Baseline's
recipe (``omniglot_small_baseline``) with a cosine classifier, in training (scale 10: the paper's for
more than 200 training classes) and fitted to each support set.

    tfmeta benchmark omniglot-small --algorithm baseline++ --data-dir DIR
    tfmeta train --config omniglot_small_baselinepp --dataset omniglot-small:DIR --out RUN
"""

from tfmeta.configs import omniglot_small_baseline


def config():
    return omniglot_small_baseline.config().with_values({"algorithm": "baseline++"})
