"""First-order MAML on the omniglot-small benchmark (:mod:`tfmeta.benchmark`): MAML's recipe
(``omniglot_small_maml``: Finn et al. 2017, 5-way 1-shot, one inner step of 0.4, Conv4 64, affine
augmentation, cosine outer learning rate) with the first-order meta-gradient of Finn et al.,
section 5.2 (paper, full Omniglot: 98.3 / 99.2 / 89.4 / 97.9 % for 5-way 1/5-shot, 20-way 1/5-shot).

    tfmeta benchmark omniglot-small --algorithm fomaml --data-dir DIR
    tfmeta train --config omniglot_small_fomaml --dataset omniglot-small:DIR --out RUN

Trained for 5 ways: the benchmark's 20-way settings need ``--set episode.ways=20``. Differences
from the paper: meta-batch 8 and 1,000 meta-iterations instead of 32 and 60,000 (the budget), and
MAML's recipe's inner step on the mean support loss. Measured (600 test episodes, 5-way 1-shot /
5-shot, as deployed): 66.44 / 80.93 % in 7.0 min; with the paper's summed step 25.50 / 24.77 %.
"""

from tfmeta.configs import omniglot_small_maml


def config():
    return omniglot_small_maml.config().with_values({"algorithm": "fomaml",
                                                     "train.steps": 1000})
