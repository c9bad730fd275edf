"""Refactors preserve behaviour: with the same seed, every learner gives the losses it gave when
they were recorded (``tests/recorded_losses.json``), to float tolerance.

Recorded on the code before the issue-9 redesign (learners that describe themselves, one
constructor, one outer step) with ``python tests/test_same_losses.py --record``; re-record only for
a change that is meant to change the numbers (``--record NAME,NAME``), and say so here and in its
commit. Re-recorded since: the metric learners (matching, protonet, relation, ridge, siamese,
snail, svm) when the outer step began to take the tasks one at a time (issue 10): their BatchNorm
normalises each episode with its own statistics, as in their papers, instead of the whole
meta-batch at once; Reptile's training loss when it became the last inner step's (no extra forward
pass over the query images; its test figures, hence its weights, are unchanged); SNAIL when each
task of a meta-step got its own support order; first-order MAML, Matching and Relation Networks
when training-mode BatchNorm became TensorFlow's fused kernel (issue 10): the same function to
float rounding (training losses within 3e-4), but Adam turns the rounding noise in the zero
gradients of the convolutions' biases (a bias before BatchNorm) into full-size steps, which moves
these three learners' test losses by up to 0.6 %; MAML, first-order MAML and ANIL when their default
inner loss became the mean (issue 26: the paper's summed step did not learn in a short run). The
other learners still agree within the tolerance.
"""

import json
import os
import sys

import numpy as np
import pytest

RECORD = os.path.join(os.path.dirname(__file__), "recorded_losses.json")
STEPS = 3


def _losses(algorithm, small_glyphs):
    from tfmeta.data import EpisodeConfig, EpisodeSampler
    from tfmeta.run import RunConfig, TrainConfig, build_learner

    from learner_cases import smoke_options

    episode = EpisodeConfig(3, 2, 2)
    config = RunConfig(algorithm=algorithm, episode=episode, width=8,
                       learner=smoke_options(algorithm, episode),
                       train=TrainConfig(steps=STEPS, meta_batch=2, seed=1))
    learner = build_learner(config, (28, 28, 1))
    batches = iter(EpisodeSampler(small_glyphs, config.episode, 2, seed=5).dataset())
    train = [float(learner.meta_train_step(next(batches))["loss"]) for _ in range(STEPS)]
    test = learner.meta_test_step(next(batches))
    return {"train_loss": train, "test_loss": test["loss"].numpy().tolist(),
            "test_accuracy": test["accuracy"].numpy().tolist()}


def _algorithms():
    if not os.path.exists(RECORD):  # while recording
        return []
    with open(RECORD) as f:
        return sorted(json.load(f))


@pytest.mark.parametrize("algorithm", _algorithms())
def test_same_seed_gives_the_recorded_losses(algorithm, small_glyphs):
    with open(RECORD) as f:
        expected = json.load(f)[algorithm]
    got = _losses(algorithm, small_glyphs)
    for key in expected:
        # A head fitted to each support set by 100 solver steps (the fine-tuning baselines' test
        # step) carries float rounding of another summation order into its loss: measured 0.19 %
        # off the record in a fresh environment at 5612a5e, before this session's changes.
        fitted_head = algorithm in ("baseline", "baseline++", "rfs")
        rtol = 5e-3 if key == "test_loss" and fitted_head else 2e-4
        np.testing.assert_allclose(got[key], expected[key], rtol=rtol, atol=2e-5, err_msg=key)


if __name__ == "__main__" and sys.argv[1:2] == ["--record"]:
    from tfmeta.data import generate_glyphs
    from tfmeta.learners import ALGORITHMS

    glyphs = generate_glyphs(num_classes=80, samples_per_class=20, image_size=28, seed=3)
    names = sys.argv[2].split(",") if len(sys.argv) > 2 else sorted(ALGORITHMS)  # or some only
    recorded = {}
    if os.path.exists(RECORD):
        with open(RECORD) as f:
            recorded = json.load(f)
    recorded.update({name: _losses(name, glyphs) for name in names})
    with open(RECORD, "w") as f:
        json.dump(recorded, f, indent=1)
        f.write("\n")
    print(json.dumps(recorded, indent=1))
