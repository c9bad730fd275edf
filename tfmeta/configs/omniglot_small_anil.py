"""ANIL on the omniglot-small benchmark (:mod:`tfmeta.benchmark`): MAML's recipe
(``omniglot_small_maml``: 5-way 1-shot, one inner step of 0.4, Conv4 64, affine augmentation,
cosine outer learning rate) with the inner loop on the classifier head alone, as in Raghu, Raghu,
Bengio & Vinyals (ICLR 2020, arXiv:1909.09157; full Omniglot 20-way: 96.2 % 1-shot, 98.0 % 5-shot).

    tfmeta benchmark omniglot-small --algorithm anil --data-dir DIR
    tfmeta train --config omniglot_small_anil --dataset omniglot-small:DIR --out RUN

Trained for 5 ways: the benchmark's 20-way settings need ``--set episode.ways=20``. Difference
from the paper: meta-batch 8 and 1,500 meta-iterations (the budget). It keeps the inner step MAML's
recipe had when it was measured (README): the paper's 0.4 on the support loss summed and divided by
the shots, one test-time step.
"""

from tfmeta.configs import omniglot_small_maml


def config():
    return omniglot_small_maml.config().with_values({
        "algorithm": "anil", "train.steps": 1500, "learner.inner_reduction": "sum/shots",
        "learner.test_inner_steps": 1})
