"""SNAIL: A Simple Neural Attentive Meta-Learner (Mishra, Rohaninejad, Chen & Abbeel, ICLR 2018,
arXiv:1707.03141), the memory-based learner.

Few-shot classification as sequence-to-sequence (section 3 and appendix of the paper): each query
is appended to its task's labelled support sequence, and a causal network reads the sequence::

    sequence = [(f(x_1), onehot(y_1)), ..., (f(x_S), onehot(y_S)), (f(x_q), 0)]
    h = Attention -> TC -> Attention -> TC -> Attention (all causal)  over the sequence
    logits(x_q) = Dense(ways)(h at the last position)

TC blocks are dense blocks of causal dilated convolutions (kernel 2, dilations 1, 2, 4, ... up to
the sequence length) with gated tanh * sigmoid activations; attention blocks are causal
single-head softmax attention whose output is concatenated to the input. Nothing is adapted by
gradient at test time: the support set is the network's memory. The network has ``ways`` label
inputs and outputs: a support set of more classes is refused (never truncated), and meta-training
shows each support sequence in a random order, so that classes are read from labels, not positions.
"""

from __future__ import annotations

import dataclasses
import math

import keras
import tensorflow as tf

from tfmeta.learners.metric import MetricLearner
from tfmeta.learners.registry import register


@dataclasses.dataclass
class SNAILConfig:
    """Attributes:
        filters: filters of each dense block (128 in the paper).
        keys: key sizes of the three attention blocks (64, 256, 512 in the paper's Omniglot net).

    The episode sizes the network (``SNAIL(..., episode=...)``): ``ways`` label inputs and
    outputs, and TC dilations that span its support sequence of ``ways * shots`` images.
    """

    filters: int = 128
    keys: tuple = (64, 256, 512)


@keras.saving.register_keras_serializable(package="tfmeta")
class CausalAttention(keras.layers.Layer):
    """Causal softmax attention; the output is concatenated to the input."""

    def __init__(self, key_size, value_size, **kwargs):
        super().__init__(**kwargs)
        self.key_size, self.value_size = key_size, value_size
        self.query_layer = keras.layers.Dense(key_size, name=f"{self.name}_query")
        self.key_layer = keras.layers.Dense(key_size, name=f"{self.name}_key")
        self.value_layer = keras.layers.Dense(value_size, name=f"{self.name}_value")

    def call(self, x):
        q, k, v = self.query_layer(x), self.key_layer(x), self.value_layer(x)
        logits = tf.einsum("bik,bjk->bij", q, k) / math.sqrt(self.key_size)
        n = tf.shape(x)[1]
        causal = tf.linalg.band_part(tf.ones([n, n], tf.bool), -1, 0)
        logits = tf.where(causal[None], logits, logits.dtype.min)
        return tf.concat([x, tf.einsum("bij,bjv->biv", tf.nn.softmax(logits, -1), v)], -1)

    def get_config(self):
        return dict(super().get_config(), key_size=self.key_size, value_size=self.value_size)


def dense_block(x, dilation, filters, name):
    # Every layer is named: with Keras' automatic names (conv1d_17, ...), which depend on what
    # the process built before, the graph's op order and so the float summation order of the
    # gradients would change from one freshly built learner to the next.
    xf = keras.layers.Conv1D(filters, 2, dilation_rate=dilation, padding="causal",
                             name=f"{name}_filter")(x)
    xg = keras.layers.Conv1D(filters, 2, dilation_rate=dilation, padding="causal",
                             name=f"{name}_gate")(x)
    gated = keras.layers.Multiply(name=f"{name}_gated")([
        keras.layers.Activation("tanh", name=f"{name}_tanh")(xf),
        keras.layers.Activation("sigmoid", name=f"{name}_sigmoid")(xg)])
    return keras.layers.Concatenate(name=f"{name}_concat")([x, gated])


def snail_network(input_dim, ways: int, max_support: int, config: SNAILConfig) -> keras.Model:
    """Sequences ``[batch, length, input_dim + ways]`` -> logits ``[batch, ways]`` (last step);
    the TC blocks' dilations span sequences of ``max_support`` labelled images and the query."""
    inputs = keras.Input((None, input_dim + ways), name="sequence")
    dilations = [2 ** i for i in range(max(1, math.ceil(math.log2(max_support + 1))))]
    x = inputs
    for i, key in enumerate(config.keys):
        x = CausalAttention(key, key // 2, name=f"attention{i + 1}")(x)
        if i < len(config.keys) - 1:
            for d in dilations:
                x = dense_block(x, d, config.filters, name=f"tc{i + 1}_dilation{d}")
    outputs = keras.layers.Dense(ways, name="logits")(x[:, -1])
    return keras.Model(inputs, outputs, name="snail")


@register
class SNAIL(MetricLearner):
    """SNAIL over any Keras embedding model."""

    name = "snail"
    config_class = SNAILConfig
    xla_unsupported = None  # its classes are the label embedding's: XLA compiles it

    def build_parts(self) -> dict:
        ways = self.episode.ways
        self.network = snail_network(int(self.feature_shape[-1]), ways,
                                     ways * self.episode.shots, self.config)
        return {"network": self.network}

    @property
    def max_ways(self) -> int:
        return self.episode.ways  # the label inputs and the output have this many units

    def score(self, support, support_y, query, ways, training=False):
        """One sequence per query: the task's labelled support, then the query with no label."""
        labels = tf.one_hot(support_y, self.max_ways, dtype=support.dtype)
        tasks, shots, queries = tf.shape(support)[0], tf.shape(support)[1], tf.shape(query)[1]
        labelled = tf.concat([support, labels], -1)                           # [T, S, D + W]
        labelled = tf.broadcast_to(labelled[:, None], [tasks, queries, shots,
                                                       tf.shape(labelled)[-1]])
        unlabelled = tf.concat([query, tf.zeros([tasks, queries, self.max_ways],
                                                support.dtype)], -1)[:, :, None]
        sequences = tf.concat([labelled, unlabelled], 2)                      # [T, Q, S + 1, D + W]
        flat = tf.reshape(sequences, [tasks * queries, shots + 1, tf.shape(sequences)[-1]])
        logits = self.network(flat, training=training)
        return tf.reshape(logits, [tasks, queries, self.max_ways])[..., :ways]

    def training_support(self, support, support_y, task_index):
        """Each meta-training task's support embeddings and labels in a random order: episodes
        arrive sorted by label, and a network trained on sorted sequences could read classes
        off positions instead of labels. The order is a stateless permutation seeded by the outer
        step and the task's index in the meta-batch, so a resumed run sees the same orders."""
        seed = tf.stack([tf.cast(self.optimizer.iterations, tf.int32),
                         7919 + tf.cast(task_index, tf.int32)])
        keys = tf.random.stateless_uniform(tf.shape(support_y), seed)
        order = tf.argsort(keys, axis=-1)
        return (tf.gather(support, order, batch_dims=1), tf.gather(support_y, order, batch_dims=1))
