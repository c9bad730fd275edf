"""Proto-MAML on the omniglot-small benchmark (:mod:`tfmeta.benchmark`): MAML's preset
(``omniglot_small_maml``: one inner step of 0.4 on the mean support loss while meta-training,
three at test, meta-batch 8, 1,500 meta-iterations, affine augmentation, a cosine outer schedule)
with each task's head starting at its support set's prototypes (Triantafillou et al. 2020). Its
adapted classifier is as wide as the support set has classes, so the benchmark evaluates the
20-way settings too with the 5-way model.

    tfmeta benchmark omniglot-small --algorithm protomaml --data-dir DIR
    tfmeta train --config omniglot_small_protomaml --dataset omniglot-small:DIR --out RUN

The inner step stays MAML's: on glyphs' validation classes (Conv4 32, 300 meta-steps of 8 tasks,
`tfmeta train --algorithm protomaml --dataset glyphs --width 32 --steps 300 --meta-batch 8
--set learner.inner_lr=LR --set learner.test_inner_steps=3 --set data.augment=affine`), 0.4 / 0.1
/ 0.02 gave 89.4 / 88.8 / 89.2 % validation accuracy: no difference to choose by.
"""

from tfmeta.configs import omniglot_small_maml


def config():
    return omniglot_small_maml.config().with_values({"algorithm": "protomaml"})
