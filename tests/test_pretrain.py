"""Pre-training the backbone as a classifier of every training class (tfmeta.pretrain): it trains
the body and leaves a classifier learner's head alone, and the embedding it gives tells unseen
classes apart better than the random one it started from (learning, on held-out classes)."""

import numpy as np

from tfmeta.data import EpisodeConfig, EpisodeSampler
from tfmeta.evaluation import evaluate
from tfmeta.learners import create
from tfmeta.pretrain import body_of, pretrain


def test_pretraining_trains_the_body_not_a_classifier_head(small_glyphs, seeded):
    learner = create("maml", "conv4", backbone_width=8, episode=EpisodeConfig(5, 1, 5))
    head = [v.numpy().copy() for v in learner.model.get_layer("head").trainable_variables]
    body = [v.numpy().copy() for v in body_of(learner).trainable_variables]
    pretrain(learner, small_glyphs.subset(range(20)), 20, 16, log=lambda *_: None)
    for before, v in zip(head, learner.model.get_layer("head").trainable_variables):
        np.testing.assert_array_equal(before, v.numpy())
    assert all(not np.allclose(b, v.numpy())
               for b, v in zip(body, body_of(learner).trainable_variables))


def test_pretrained_embedding_separates_unseen_classes(small_glyphs, seeded):
    train, test = small_glyphs.subset(range(60)), small_glyphs.subset(range(60, 80))
    learner = create("protonet", "conv4", backbone_width=16, episode=EpisodeConfig(5, 1, 5))
    sampler = EpisodeSampler(test, EpisodeConfig(5, 1, 5), 4, seed=1)
    before = evaluate(learner, sampler, 100)["accuracy"]
    result = pretrain(learner, train, 150, 32, 3e-3, augment="affine", log=lambda *_: None)
    after = evaluate(learner, sampler, 100)["accuracy"]
    assert result["pretrain_accuracy"] > 0.2          # 60 classes: chance 0.017
    assert after > before + 0.08, (before, after)
