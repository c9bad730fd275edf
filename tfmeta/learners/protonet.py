"""Prototypical Networks (Snell, Swersky & Zemel, NeurIPS 2017, arXiv:1703.05175).

For each task (Algorithm 1 of the paper)::

    c_k = mean of f(x) over the support images of class k          # prototypes
    p(y = k | x) = softmax_k(-d(f(x), c_k))                          # d: squared Euclidean
    minimise the query cross-entropy by gradient descent on f

``distance="cosine"`` uses scaled cosine similarity instead. Training episodes may have more ways
than test episodes (the paper trains 60-way for 5-way tests): the head works for any ways.

Transductive figure (``refine_steps``; Ren et al., ICLR 2018, "Meta-Learning for Semi-Supervised
Few-Shot Classification", soft k-means refinement, here at test time only): the queries of an
episode, taken together, refine the prototypes::

    repeat refine_steps times:
        w_qk = softmax_k(-d(f(x_q), c_k))                            # soft assignment of queries
        c_k  = (sum of f(x) over support of k + sum_q w_qk f(x_q)) / (shots_k + sum_q w_qk)

Evaluation reports it beside the deployed accuracy (as MAML's query-batch BatchNorm figure);
``transductive_logits`` answers a batch of queries so. An adapted classifier answers each image on
its own, as deployed.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from tfmeta.learners.losses import accuracy, cross_entropy
from tfmeta.learners.metric import MetricLearner
from tfmeta.learners.registry import register


@dataclasses.dataclass
class ProtoNetConfig:
    """Attributes:
        distance: ``euclidean`` (squared, the paper's) or ``cosine``.
        cosine_scale: temperature multiplying cosine similarities.
        refine_steps: soft k-means steps of the transductive figure (0: none). 3 was chosen on
            omniglot-small's validation classes (``python benchmarks/validation_options.py RUN
            --options refine_steps=0 refine_steps=1 refine_steps=3 refine_steps=10 --settings
            20x1w,20x5,5x5 --episodes 200`` on a 600-step run: 20-way 1-shot within an alphabet
            79.74 % plain, 82.03 / 82.81 / 82.96 % after 1 / 3 / 10 steps; 20-way 5-shot 96.82 ->
            97.25 %; 5-way 5-shot 99.50 -> 99.62 %).
    """

    distance: str = "euclidean"
    cosine_scale: float = 10.0
    refine_steps: int = 3

    def __post_init__(self):
        if self.distance not in ("euclidean", "cosine"):
            raise ValueError(f"distance must be euclidean or cosine, got {self.distance!r}")
        if self.refine_steps < 0:
            raise ValueError(f"refine_steps must be 0 or more, got {self.refine_steps}")


def prototypes(support, support_y, ways):
    """Class means ``[tasks, ways, D]`` of support embeddings ``[tasks, S, D]``."""
    one_hot = tf.one_hot(support_y, ways, dtype=support.dtype)               # [tasks, S, ways]
    sums = tf.einsum("tsw,tsd->twd", one_hot, support)
    return sums / tf.reduce_sum(one_hot, axis=1)[..., None]


@register
class ProtoNet(MetricLearner):
    """Prototypical Networks over any Keras embedding model."""

    name = "protonet"
    config_class = ProtoNetConfig

    def score(self, support, support_y, query, ways, training=False):
        return self.logits_to(prototypes(support, support_y, ways), query)

    def logits_to(self, centres, query):
        """Logits ``[tasks, Q, ways]``: minus squared distances (or scaled cosines) of queries
        ``[tasks, Q, D]`` to ``centres`` ``[tasks, ways, D]``."""
        if self.config.distance == "cosine":
            q = tf.math.l2_normalize(query, -1)
            c = tf.math.l2_normalize(centres, -1)
            return self.config.cosine_scale * tf.einsum("tqd,twd->tqw", q, c)
        return -tf.reduce_sum(tf.square(query[:, :, None] - centres[:, None]), -1)

    def refined_prototypes(self, support, support_y, query, ways, steps):
        """Prototypes after ``steps`` soft k-means steps with the queries (module docstring)."""
        one_hot = tf.one_hot(support_y, ways, dtype=support.dtype)           # [tasks, S, ways]
        sums = tf.einsum("tsw,tsd->twd", one_hot, support)
        counts = tf.reduce_sum(one_hot, axis=1)[..., None]                    # [tasks, ways, 1]
        centres = sums / counts
        for _ in range(steps):
            weights = tf.nn.softmax(self.logits_to(centres, query), axis=-1)  # [tasks, Q, ways]
            centres = ((sums + tf.einsum("tqw,tqd->twd", weights, query))
                       / (counts + tf.reduce_sum(weights, axis=1)[..., None]))
        return centres

    def _meta_test_step(self, support_x, support_y, query_x, query_y):
        support, query = self.embed_episodes(support_x, query_x, training=False)
        ways = self.ways_of(support_y)
        logits = self.score(support, support_y, query, ways)
        metrics = {"loss": cross_entropy(logits, query_y, axis=-1),
                   "accuracy": accuracy(logits, query_y, axis=-1), "logits": logits}
        if self.config.refine_steps:
            refined = self.logits_to(self.refined_prototypes(
                support, support_y, query, ways, self.config.refine_steps), query)
            metrics.update(transductive_loss=cross_entropy(refined, query_y, axis=-1),
                           transductive_accuracy=accuracy(refined, query_y, axis=-1))
        return metrics

    def transductive_logits(self, support_x, support_y, query_x, steps=None):
        """Logits ``[Q, ways]`` of one episode's queries answered together: the prototypes refined
        with them (``steps``, default ``refine_steps``); each answer depends on the whole batch."""
        support_y = tf.convert_to_tensor(support_y, tf.int32)
        self.check_ways(support_y.numpy())
        return self.calibrated(self.refined_logits(support_x, support_y, query_x, steps),
                               support_y)

    def refined_logits(self, support_x, support_y, query_x, steps=None):
        """``transductive_logits`` before the calibration, in a graph too (nothing checked)."""
        support, query = self.embed_episodes(tf.convert_to_tensor(support_x, tf.float32)[None],
                                             tf.convert_to_tensor(query_x, tf.float32)[None],
                                             training=False)
        support_y = tf.convert_to_tensor(support_y, tf.int32)[None]
        ways = self.ways_of(support_y)
        steps = self.config.refine_steps if steps is None else steps
        centres = self.refined_prototypes(support, support_y, query, ways, steps)
        return self.logits_to(centres, query)[0]
