"""The quickstart: MAML, 5-way 1-shot, on the built-in glyphs, Conv4 of width 32 (~6 min on 2 CPU
cores).

    tfmeta quickstart          # = tfmeta train --config quickstart --out runs/quickstart

MAML's settings are the paper's 5-way Omniglot ones (Finn et al., 2017, section 5.2: one inner
step of alpha 0.4 in meta-training) except the meta-batch (8 tasks, the paper 32), the training
length (1000 steps, the paper 60,000), the network width (32, the paper 64) and the inner loss: on this short budget the paper's step (alpha 0.4 on the support loss summed over
images / shots, 2.0 on the mean loss in 5-way) learns too slowly (0.30 -> 0.37 in 300 steps of
meta-batch 4), alpha 0.4 on the mean loss learns (0.51 -> 0.74).
"""

from tfmeta.data import DataConfig, EpisodeConfig
from tfmeta.run import RunConfig, TrainConfig


def config() -> RunConfig:
    return RunConfig(
        algorithm="maml", data=DataConfig("glyphs"), episode=EpisodeConfig(5, 1, 15), width=32,
        learner={"inner_steps": 1, "inner_lr": 0.4, "inner_reduction": "mean"},
        train=TrainConfig(steps=1000, meta_batch=8, val_every=500, checkpoint_every=250))
