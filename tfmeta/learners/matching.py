"""Matching Networks (Vinyals, Blundell, Lillicrap, Kavukcuoglu & Wierstra, NeurIPS 2016,
arXiv:1606.04080).

For each task (equations 1-2 of the paper)::

    a(x, x_i) = softmax_i(cos(f(x), g(x_i)))          # attention over the support set
    P(y = k | x, S) = sum_i a(x, x_i) * [y_i == k]    # attention-weighted support labels
    minimise -log P(y | x, S) over query images

with f = g = the embedding network f' by default. ``temperature`` scales the cosines before the
softmax (the paper's softmax is over raw cosines; a scale speeds up training).

Full context embeddings (``fce=True``, appendix A of the paper) re-embed each side in the context of
the whole support set::

    g(x_i) = g'(x_i) + forward LSTM_i + backward LSTM_i       over the support sequence g'(x_1..S)
    f(x)   = h_K, where for k = 1..K:                          # attention LSTM
        h_k, c_k = LSTM(f'(x), [h_{k-1} + r_{k-1}, c_{k-1}]);  h_k += f'(x)
        r_k = sum_i softmax_i(<h_k, g(x_i)>) g(x_i)
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from tfmeta.learners.metric import MetricLearner
from tfmeta.learners.registry import register
from tfmeta.settings import setting


@dataclasses.dataclass
class MatchingConfig:
    """Attributes:
        temperature: multiplies cosine similarities before the attention softmax.
        fce: full context embeddings (LSTM re-embeddings of support and query).
        fce_steps: processing steps K of the attention LSTM.
    """

    temperature: float = 10.0
    fce: bool = setting(False, "full context embeddings", "fce")
    fce_steps: int = 5

    def __post_init__(self):
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")


def attention(support, query, temperature):
    """``a [tasks, Q, S]``: softmax over the support of scaled cosine similarities."""
    s = tf.math.l2_normalize(support, -1)
    q = tf.math.l2_normalize(query, -1)
    return tf.nn.softmax(temperature * tf.einsum("tqd,tsd->tqs", q, s), axis=-1)


@register
class MatchingNetwork(MetricLearner):
    """Matching Networks over any Keras embedding model."""

    name = "matching"
    config_class = MatchingConfig

    def build_parts(self) -> dict:
        if not self.config.fce:
            return {}
        dim = int(self.feature_shape[-1])
        self.support_lstm = keras.layers.Bidirectional(
            keras.layers.LSTM(dim, return_sequences=True), merge_mode="sum", name="fce_support")
        self.support_lstm.build((None, None, dim))
        self.query_cell = keras.layers.LSTMCell(dim, name="fce_query")
        self.query_cell.build((None, dim))
        return {"fce_support": self.support_lstm, "fce_query": self.query_cell}

    def context_embeddings(self, support, query):
        """(g, f) of appendix A: support re-embedded by a BiLSTM, queries by an attention LSTM."""
        g = support + self.support_lstm(support)
        tasks, queries, dim = tf.shape(query)[0], tf.shape(query)[1], tf.shape(query)[2]
        x = tf.reshape(query, [tasks * queries, dim])
        h, c = tf.zeros_like(x), tf.zeros_like(x)
        r = tf.zeros_like(x)
        g_per_query = tf.repeat(g, queries, axis=0)                     # [T*Q, S, D]
        for _ in range(self.config.fce_steps):
            h, (_, c) = self.query_cell(x, [h + r, c])
            h = h + x
            a = tf.nn.softmax(tf.einsum("nd,nsd->ns", h, g_per_query), -1)
            r = tf.einsum("ns,nsd->nd", a, g_per_query)
        return g, tf.reshape(h, [tasks, queries, dim])

    def score(self, support, support_y, query, ways, training=False):
        """Log-probabilities ``[tasks, Q, ways]`` (softmax of them gives back P(y | x, S))."""
        if self.config.fce:
            support, query = self.context_embeddings(support, query)
        a = attention(support, query, self.config.temperature)
        probabilities = tf.einsum("tqs,tsw->tqw", a, tf.one_hot(support_y, ways, dtype=a.dtype))
        return tf.math.log(probabilities + 1e-12)
