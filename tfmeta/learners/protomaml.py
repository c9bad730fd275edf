"""Proto-MAML (Triantafillou et al., ICLR 2020, "Meta-Dataset: A Dataset of Datasets for Learning
to Learn from Few Examples", arXiv:1903.03096, section 3.2): MAML whose head starts each task as
the Prototypical Network of its support set.

For each task, with f_theta the features below the head and c_k the mean feature of class k on
the support set::

    W_k = 2 c_k,  b_k = -||c_k||^2                      # head := prototypes (f W + b ranks as
                                                        # -||f - c_k||^2, ProtoNet's logits)
    phi = inner_loop(body, W, b)                        # MAML's inner loop from there
    theta <- theta - beta * grad_theta L_query(phi)     # outer loop; the gradient flows through
                                                        # the prototypes into the body

The meta-learned head is not used: every task's head comes from its support set, so its
adaptation starts where ProtoNet ends. Classes without support images get a bias of -1e4 (never
predicted). Options and their defaults are MAML's (:class:`tfmeta.learners.maml.MAMLConfig`);
``first_order`` drops the inner loop's second-order term as in the paper's fo-Proto-MAML.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfmeta.learners.maml import MAML
from tfmeta.learners.registry import register

ABSENT_BIAS = -1e4  # the head's bias for a class without support images


@register
class ProtoMAML(MAML):
    """Proto-MAML over any Keras classifier whose last layer is a ``Dense`` head with a bias."""

    name = "protomaml"

    def __init__(self, model: keras.Model, *args, **kwargs):
        head = model.layers[-1]
        if not (isinstance(head, keras.layers.Dense) and head.use_bias and [
                id(v) for v in model.trainable_variables[-2:]] == [id(head.kernel), id(head.bias)]):
            raise ValueError("protomaml needs a model that ends in a Dense head with a bias (its "
                             "last trainable variables)")
        super().__init__(model, *args, **kwargs)
        # The same layers up to the head's input: the features f_theta.
        self._features = keras.Model(self.model.inputs, head.input)

    def features(self, params, images):
        """``f_theta(images)`` ``[n, D]`` under the body's weights of ``params`` (batch
        statistics)."""
        non_trainable = [v.value for v in self._features.non_trainable_variables]
        features, _ = self._features.stateless_call(list(params[:-2]), non_trainable, images,
                                                    training=True)
        return features

    def prototype_head(self, theta, support_x, support_y):
        """``theta`` with its head set to the support set's prototypes."""
        kernel = theta[-2]
        features = tf.cast(self.features(theta, support_x), kernel.dtype)
        ways = kernel.shape[-1]
        counts = tf.math.unsorted_segment_sum(tf.ones_like(features[:, 0]), support_y, ways)
        centres = (tf.math.unsorted_segment_sum(features, support_y, ways)
                   / tf.maximum(counts, 1.0)[:, None])
        bias = tf.where(counts > 0, -tf.reduce_sum(tf.square(centres), -1), ABSENT_BIAS)
        return list(theta[:-2]) + [2.0 * tf.transpose(centres), bias]

    def inner_loop(self, theta, x, y, steps, differentiable=True):
        return super().inner_loop(self.prototype_head(theta, x, y), x, y, steps, differentiable)
