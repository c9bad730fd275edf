"""Proto-MAML on the omniglot-small benchmark (:mod:`tfmeta.benchmark`): MAML's preset
(``omniglot_small_maml``: one inner step of 0.4 on the mean support loss while meta-training,
three at test, meta-batch 8, 1,500 meta-iterations, affine augmentation, a cosine outer schedule)
with each task's head starting at its support set's prototypes (Triantafillou et al. 2020), and
test-time steps of 0.02. Its adapted classifier is as wide as the support set has classes, so the
benchmark evaluates the 20-way settings too with the 5-way model.

    tfmeta benchmark omniglot-small --algorithm protomaml --data-dir DIR
    tfmeta train --config omniglot_small_protomaml --dataset omniglot-small:DIR --out RUN

Chosen on validation classes. The training step stays MAML's: on glyphs' validation classes
(Conv4 32, 300 meta-steps of 8 tasks, `tfmeta train --algorithm protomaml --dataset glyphs
--width 32 --steps 300 --meta-batch 8 --set learner.inner_lr=LR --set learner.test_inner_steps=3
--set data.augment=affine`), 0.4 / 0.1 / 0.02 gave 89.4 / 88.8 / 89.2 % validation accuracy. The
test-time step: trained on one-shot tasks, whose support images are their own prototypes (a
support loss near 0), the network met no real inner step, and 0.4 on five-shot support sets cut
its accuracy (the run trained with this preset at 0.4, on omniglot-small's validation classes,
`python benchmarks/validation_options.py RUN --options "" test_inner_lr=0.1 test_inner_lr=0.02
test_inner_lr=0.005 --settings 5x1,5x5,20x1,20x5`: 5-way 5-shot 95.28 / 99.40 / 99.52 / 99.52 %,
20-way 5-shot 80.65 / 96.68 / 96.68 / 96.68 %, 1-shot within 0.2 points of each other).
"""

from tfmeta.configs import omniglot_small_maml


def config():
    return omniglot_small_maml.config().with_values({"algorithm": "protomaml",
                                                     "learner.test_inner_lr": 0.02})
