"""What optimisation-based learners (MAML, first-order MAML, ANIL, Meta-SGD, Reptile) share: a
model handled functionally (``stateless_call``) so that an inner loop is a chain of tensors the
outer loop can differentiate, BatchNorm on the support set's statistics, and a deployed
classifier that holds them."""

from __future__ import annotations

import keras
import tensorflow as tf

from tfmeta.learners.base import Learner
from tfmeta.learners.batchnorm import (batchnorm_momentum_zero, differentiated_once,
                                      exact_batchnorm_moments, freeze_batchnorm_statistics)
from tfmeta.learners.losses import accuracy, cross_entropy, full_precision
from tfmeta.learners.layers import embedding_copy, seed_state_positions, stochastic_layers_off


class OptimizationLearner(Learner):
    """Learners that adapt by gradient steps on the model's weights (MAML, Reptile, ...).

    The model maps images to ``ways`` logits. Its weights are handled functionally with
    ``keras.Model.stateless_call``, so an inner loop is a chain of tensors the outer loop can
    differentiate through, and the model's variables change only in the outer update.

    BatchNorm uses the statistics of the batch at hand in the inner loop (the support set), as in
    the papers' code. A query image is then classified two ways, and evaluation reports both:

    * as deployed (``accuracy``): BatchNorm holds the support set's statistics, so each query
      image gets the answer it would get alone -- exactly what ``adapt()``, ``predict()`` and
      every export compute;
    * transductively (``transductive_accuracy``): BatchNorm uses the query batch's own statistics,
      as the MAML and Reptile papers evaluate (and as the meta-training loss is computed).

    Dropout-like layers (DropBlock, Dropout, ...) are active only while meta-training.
    """

    backbone_output = "logits"

    @property
    def second_order(self) -> bool:
        """Whether the meta-gradient differentiates the inner loop's gradients (MAML's Hessian
        term); first-order learners differentiate the model once."""
        return False

    def __init__(self, model: keras.Model, *args, **kwargs):
        super().__init__(model, *args, **kwargs)
        if self.second_order:  # inner loops differentiated twice: BatchNorm's moments must allow it
            exact_batchnorm_moments(self.model)
        self._seed_states = seed_state_positions(self.model)

    def forward(self, params, images):
        """Logits of ``images`` under weights ``params``; BatchNorm uses batch statistics."""
        non_trainable = [v.value for v in self.model.non_trainable_variables]
        # stateless_call returns a random layer's advanced seed, which a pure forward drops: each
        # call gets a fresh seed instead, or every Dropout mask would be the same.
        for i in self._seed_states:
            non_trainable[i] = tf.random.uniform(tf.shape(non_trainable[i]), maxval=2 ** 31 - 1,
                                                 dtype=non_trainable[i].dtype)
        logits, _ = self.model.stateless_call(list(params), non_trainable, images, training=True)
        return full_precision(logits)

    def outer_forward(self, params, images):
        """``forward`` for a pass the meta-gradient differentiates only once: the query loss at
        the adapted weights (the outer loss). A second-order learner's BatchNorm layers take the
        fused kernel there (:func:`tfmeta.learners.batchnorm.differentiated_once`); its inner
        loop's support passes, differentiated twice, keep their exact moments."""
        with differentiated_once(self.model):
            return self.forward(params, images)

    def deployed_forward(self, params, support_x, query_x):
        """Logits of ``query_x`` under ``params`` with BatchNorm frozen at the statistics of
        ``support_x``: what the classifier ``adapt()`` returns answers."""
        non_trainable = [v.value for v in self.model.non_trainable_variables]
        with batchnorm_momentum_zero(self.model):  # moving statistics := the support's
            _, statistics = self.model.stateless_call(list(params), non_trainable, support_x,
                                                      training=True)
        logits, _ = self.model.stateless_call(list(params), statistics, query_x, training=False)
        return full_precision(logits)

    def embedding_model(self, images=None) -> keras.Model:
        """The features below the classifier head (see ``Learner.embedding_model``). These
        learners normalise with the statistics of the images at hand (BatchNorm never kept
        moving statistics in meta-training), so ``images`` -- a support set of the user's
        domain -- give the BatchNorm statistics the embedding keeps, as ``adapt()`` does."""
        if images is None:
            raise ValueError(f"{self.name} normalises with the statistics of the images at hand: "
                             "give images (a support folder) whose BatchNorm statistics the "
                             "embedding keeps")
        return embedding_copy(self.model, self.model.layers[-1].input, images)

    def weights(self) -> list:
        """The model's trainable weights as tensors (read inside a tape, they are watched)."""
        return [tf.convert_to_tensor(v) for v in self.model.trainable_variables]

    @property
    def test_inner_steps(self) -> int:
        return self.config.test_inner_steps or self.config.inner_steps

    def task_loss(self, theta, support_x, support_y, query_x, query_y):
        """``(loss, accuracy)`` of one task: its query loss after adapting ``theta`` (the
        model's weights as tensors) on its support set."""
        raise NotImplementedError

    def task_losses(self, support_x, support_y, query_x, query_y, task_index=0):
        """``task_loss`` of each task; the meta-batch size is static, so the tasks' graphs are
        independent and run side by side."""
        theta = self.weights()
        results = [self.task_loss(theta, support_x[i], support_y[i], query_x[i], query_y[i])
                   for i in range(support_x.shape[0])]
        losses, accuracies = zip(*results)
        return tf.stack(losses), tf.stack(accuracies)

    def inner_loop(self, theta, x, y, steps, differentiable=True):
        """Adapted weights phi from theta on one task's data (``differentiable``: a chain the
        outer loop can differentiate through)."""
        raise NotImplementedError

    def test_adaptation(self, theta, support_x, support_y):
        """phi for one support set at test time (evaluation, ``adapt``, served models)."""
        return self.inner_loop(theta, support_x, support_y, self.test_inner_steps,
                               differentiable=False)

    def _meta_test_step(self, support_x, support_y, query_x, query_y):
        theta = self.weights()
        metrics = {"loss": [], "accuracy": [], "logits": [], "transductive_loss": [],
                   "transductive_accuracy": []}
        with stochastic_layers_off(self.model):
            for i in range(support_x.shape[0]):
                phi = self.test_adaptation(theta, support_x[i], support_y[i])
                deployed = self.deployed_forward(phi, support_x[i], query_x[i])
                metrics["logits"].append(deployed)
                for prefix, logits in (("", deployed),
                                       ("transductive_", self.forward(phi, query_x[i]))):
                    metrics[prefix + "loss"].append(cross_entropy(logits, query_y[i]))
                    metrics[prefix + "accuracy"].append(accuracy(logits, query_y[i]))
        return {name: tf.stack(values) for name, values in metrics.items()}

    def _adapt(self, support_x, support_y):
        """``test_inner_steps`` steps on the support set -> a Keras classifier (logits)."""
        support_x = tf.convert_to_tensor(support_x, tf.float32)
        support_y = tf.convert_to_tensor(support_y, tf.int32)
        self.check_ways(support_y.numpy())
        with stochastic_layers_off(self.model):
            phi = self.test_adaptation(self.weights(), support_x, support_y)
        return self.adapted_classifier(phi, support_x)

    def _fewshot_logits(self, support_x, support_y, query_x):
        with stochastic_layers_off(self.model):
            phi = self.test_adaptation(self.weights(), support_x, support_y)
            logits = self.deployed_forward(phi, support_x, query_x)
        return logits[:, :tf.reduce_max(support_y) + 1]

    @property
    def max_ways(self) -> int:
        return int(self.model.outputs[0].shape[-1])  # the head's units

    def adapted_classifier(self, params, support_x) -> keras.Model:
        """A copy of the model with weights ``params`` and BatchNorm statistics of the support."""
        classifier = keras.models.clone_model(self.model)
        classifier.set_weights(self.model.get_weights())
        for variable, value in zip(classifier.trainable_variables, params):
            variable.assign(value)
        with stochastic_layers_off(classifier):
            freeze_batchnorm_statistics(classifier, support_x)
        return classifier
