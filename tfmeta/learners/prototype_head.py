"""A head that starts each task at its support set's prototypes (Triantafillou et al., ICLR 2020,
"Meta-Dataset", arXiv:1903.03096, section 3.2, Proto-MAML), for the MAML family: as wide as the
task has classes, so a learner meta-trained on 5-way tasks adapts to 20-way ones.

With f(x) the features below the model's ``Dense`` head and c_k the mean feature of class k's
support images::

    W_k = 2 c_k,  b_k = -||c_k||^2        # f W + b = -||f - c_k||^2 + ||f||^2: ProtoNet's ranking

In meta-training a head of the model's own width runs through the model as it is; any other
width runs the body (the model up to the head's input) and multiplies by the head. Answers (the
deployed forward pass, the adapted classifier and its exports) subtract ``||f||^2``: the same
softmax, so the same classes, losses and calibration, but the largest logit is then minus the
squared distance to the nearest (adapted) prototype, what the max-logit unknown score needs (it
read ``||f||^2 - d``: Proto-MAML's open-set AUROC on omniglot-small was 0.54; on that run's
validation classes, ``benchmarks/unknown_scores.py``, 0.572 -> 0.966 with 5 known + 5 unknown
classes and 0.557 -> 0.810 with 15 + 5 within an alphabet).
The adapted classifier is the body, a new ``Dense`` layer of the head's width and that offset.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfmeta.errors import ConfigError
from tfmeta.learners.batchnorm import batchnorm_momentum_zero, freeze_batchnorm_statistics
from tfmeta.learners.layers import single_input, stochastic_layers_off
from tfmeta.learners.losses import full_precision

ABSENT_BIAS = -1e4  # the head's bias for a class without support images (never predicted)


class PrototypeHead:
    """What the prototype head needs of a functional learner (``self.model``, ``forward``,
    ``deployed_forward``, ``adapted_classifier``): the model's body and its head's width, set by
    ``init_prototype_head`` (until then, heads of the model's width only)."""

    body = None  # the model up to its head's input
    head_units = None  # the model's head's width

    def init_prototype_head(self) -> None:
        """Check that the model ends in a linear ``Dense`` head with a bias that owns its last
        two trainable variables, and keep the body (the same layers up to the head's input)."""
        head = self.model.layers[-1]
        if not (isinstance(head, keras.layers.Dense) and head.use_bias
                and head.activation in (None, keras.activations.linear)
                and [id(v) for v in self.model.trainable_variables[-2:]]
                == [id(head.kernel), id(head.bias)]):
            raise ConfigError(f"{self.name}'s prototype head needs a model that ends in a linear "
                              "Dense layer with a bias (its last trainable variables)")
        self.body = keras.Model(single_input(self.model.inputs), head.input)
        if [id(v) for v in self.body.trainable_variables] != [
                id(v) for v in self.model.trainable_variables[:-2]]:
            raise ConfigError(f"{self.name}'s prototype head needs the head's input to depend on "
                              "every other trainable weight of the model")
        self.head_units = int(head.units)

    def body_features(self, params, images, statistics=None):
        """``f(images)`` ``[n, D]`` under the body's weights of ``params``: batch statistics, or
        BatchNorm frozen at ``statistics`` (the body's non-trainable values)."""
        training = statistics is None
        if training:
            statistics = [v.value for v in self.body.non_trainable_variables]
        features, _ = self.body.stateless_call(list(params[:-2]), statistics, images,
                                               training=training)
        return features

    @staticmethod
    def head_logits(params, features):
        """``f W + b`` with the head ``W, b`` of ``params``, in full precision."""
        kernel, bias = params[-2], params[-1]
        return full_precision(tf.matmul(tf.cast(features, kernel.dtype), kernel) + bias)

    def prototype_head(self, params, support_x, support_y, ways=None) -> list:
        """``params`` with its head set to the prototypes of the support set; ``ways``: the head's
        width (``None``: the support's number of classes), classes without support images
        getting ``ABSENT_BIAS``."""
        kernel = params[-2]
        features = tf.cast(self.body_features(params, support_x), kernel.dtype)
        ways = tf.reduce_max(support_y) + 1 if ways is None else ways
        counts = tf.math.unsorted_segment_sum(tf.ones_like(features[:, 0]), support_y, ways)
        centres = (tf.math.unsorted_segment_sum(features, support_y, ways)
                   / tf.maximum(counts, 1.0)[:, None])
        bias = tf.where(counts > 0, -tf.reduce_sum(tf.square(centres), -1), ABSENT_BIAS)
        return list(params[:-2]) + [2.0 * tf.transpose(centres), bias]

    def own_width(self, params) -> bool:
        """Whether the head of ``params`` has the model's width (statically)."""
        return self.head_units is None or params[-2].shape[-1] == self.head_units

    def forward(self, params, images):
        if self.own_width(params):
            return super().forward(params, images)
        return self.head_logits(params, self.body_features(params, images))

    def deployed_forward(self, params, support_x, query_x):
        if self.body is None:  # no prototype head
            return super().deployed_forward(params, support_x, query_x)
        statistics = [v.value for v in self.body.non_trainable_variables]
        with batchnorm_momentum_zero(self.body):  # moving statistics := the support's
            _, statistics = self.body.stateless_call(list(params[:-2]), statistics, support_x,
                                                     training=True)
        features = self.body_features(params, query_x, statistics)
        return self.head_logits(params, features) - tf.reduce_sum(
            tf.square(tf.cast(features, tf.float32)), -1, keepdims=True)

    def adapted_classifier(self, params, support_x) -> keras.Model:
        if self.body is None:
            return super().adapted_classifier(params, support_x)
        body = keras.models.clone_model(self.body)
        body.set_weights(self.body.get_weights())
        for variable, value in zip(body.trainable_variables, params[:-2]):
            variable.assign(value)
        with stochastic_layers_off(body):
            freeze_batchnorm_statistics(body, support_x)
        kernel, bias = (tf.convert_to_tensor(p).numpy() for p in params[-2:])
        inputs = keras.Input(self.input_shape, name="images")
        head = keras.layers.Dense(kernel.shape[-1], name="prototype_head")
        features = body(inputs)
        logits = MinusSquaredNorm(name="distance_offset")([head(features), features])
        classifier = keras.Model(inputs, logits, name=f"{self.name}_classifier")
        head.set_weights([kernel, bias])
        return classifier


@keras.saving.register_keras_serializable(package="tfmeta")
class MinusSquaredNorm(keras.layers.Layer):
    """``logits - ||features||^2`` (each row): at a prototype head, minus squared distances."""

    def call(self, inputs):
        logits, features = inputs
        features = keras.ops.cast(features, "float32")
        return (keras.ops.cast(logits, "float32")
                - keras.ops.sum(keras.ops.square(features), axis=-1, keepdims=True))
