"""MAML on Omniglot, 5-way 1-shot, as in Finn, Abbeel & Levine (ICML 2017, arXiv:1703.03400),
section 5.2 and its code (github.com/cbfinn/maml): 28x28 images with 90-degree rotations as new
classes, Conv4 of 64 filters, one inner step of alpha 0.4 on the support loss summed over images /
shots, meta-batch 32, Adam 1e-3, 60,000 meta-iterations.

    tfmeta train --config maml_omniglot --out runs/maml_omniglot
    tfmeta train --config maml_omniglot --set train.steps=200 --out runs/smoke   # a smoke run

Differences: 15 query images per class (the paper's code draws 1 in meta-training); evaluation
by the field's protocol (600 test episodes, 95% interval), deployed and transductive accuracy.
``omniglot`` is TFDS's background / evaluation split; the paper's (1,200 of the 1,623 characters
for training, drawn at random by its code, the rest for validation and test) is given as files
with ``--class-splits DIR`` (:mod:`tfmeta.data.class_splits`). The paper reports 98.7 / 99.9 %
(5-way 1 / 5-shot) and 95.8 / 98.9 % (20-way, ``--ways 20``).
"""

from tfmeta.data import DataConfig, EpisodeConfig
from tfmeta.run import RunConfig, TrainConfig


def config() -> RunConfig:
    return RunConfig(
        algorithm="maml", data=DataConfig("omniglot", rotations=True),
        episode=EpisodeConfig(5, 1, 15), width=64,
        learner={"inner_steps": 1, "inner_lr": 0.4, "inner_reduction": "sum/shots"},
        train=TrainConfig(steps=60_000, meta_batch=32, val_every=1000, checkpoint_every=1000))
