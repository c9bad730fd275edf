"""The outer loop every learner shares: the meta-gradient of a meta-batch, task after task, and
its update behind one finiteness guard, on one device and under a ``tf.distribute`` strategy.

Distributed (``strategy=`` any ``tf.distribute.Strategy``; the model built in its scope, as
:func:`tfmeta.learners.create` does): each replica takes an equal slice of the meta-batch's tasks
(in order: replica ``r`` the ``r``-th slice), the tasks' gradients are summed across replicas in one
all-reduce and applied in the cross-replica context behind the same finiteness guard as on one
device, and the step's figures are averaged; a test step gathers every replica's episodes. The
meta-gradient is the one of the whole meta-batch on one device.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfmeta.errors import ConfigError
from tfmeta.learners.adversarial import perturb


def all_finite(tensors) -> tf.Tensor:
    """Whether every floating-point value of ``tensors`` (tensors or variables) is finite."""
    checks = [tf.reduce_all(tf.math.is_finite(t)) for t in tensors
              if tf.as_dtype(t.dtype).is_floating]
    return tf.reduce_all(tf.stack(checks)) if checks else tf.constant(True)


class OuterLoop:
    """The outer step of :class:`tfmeta.learners.Learner` (which sets ``model``, ``parts``,
    ``optimizer``, ``strategy``, ``attack`` and ``parallel_tasks``, and defines
    ``task_losses``, the learner's own objective)."""

    def task_gradient(self, support_x, support_y, query_x, query_y, index):
        """``(gradients, loss, accuracy)`` of one task (``support_x [N*K, H, W, C]``, ...; its
        ``index`` in the meta-batch): the gradient of its loss with respect to
        ``meta_variables``. With a loss-scaling optimizer (mixed precision) the loss is scaled
        here and the optimizer unscales the gradients. With an ``attack``, the task's queries
        are perturbed first to raise its loss (adversarial querying)."""
        if self.attack is not None:
            seed = tf.stack([tf.cast(self.optimizer.iterations, tf.int32),
                             104729 + tf.cast(index, tf.int32)])
            query_x = perturb(lambda q: tf.reduce_sum(self.task_losses(
                support_x[None], support_y[None], q[None], query_y[None], task_index=index)[0]),
                query_x, self.attack, seed)
        with tf.GradientTape() as tape:
            losses, accuracies = self.task_losses(support_x[None], support_y[None],
                                                  query_x[None], query_y[None], task_index=index)
            loss = self.optimizer.scale_loss(losses[0])
        gradients = tape.gradient(loss, self.meta_variables)
        # A meta-variable the loss does not reach (Proto-MAML's head, which each task replaces)
        # gets zeros; TensorFlow's own UnconnectedGradients.ZERO fails on Keras variables, whose
        # dtype is a string.
        gradients = [tf.zeros(v.shape, tf.as_dtype(v.dtype)) if g is None else g
                     for g, v in zip(gradients, self.meta_variables)]
        return gradients, losses[0], accuracies[0]

    def outer_gradients(self, support_x, support_y, query_x, query_y):
        """``(gradients, losses [B], accuracies [B])``: the mean over the meta-batch of the
        tasks' gradients (``task_gradient``), task after task in a ``tf.while_loop`` that runs
        ``parallel_tasks`` of them side by side. Only those tasks' activations are alive at a
        time: memory does not grow with the meta-batch, the graph holds one task (tracing takes
        seconds, not minutes), and each task's BatchNorm sees its own episode, as in the papers.
        The sum is carried from task to task in order: the result does not depend on
        ``parallel_tasks``."""
        tasks = tf.shape(support_x)[0]
        # Under a strategy this replica holds the tasks first .. first + tasks - 1 of a meta-batch
        # of tasks * replicas: task indices (seeds) and the mean are the whole meta-batch's.
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync if context is not None else 1
        first = (tf.cast(context.replica_id_in_sync_group, tf.int32) * tasks
                 if context is not None else 0)

        def body(i, total, losses, accuracies):
            gradients, loss, accuracy_ = self.task_gradient(support_x[i], support_y[i],
                                                            query_x[i], query_y[i], first + i)
            total = [t + g for t, g in zip(total, gradients)]
            return (i + 1, total, losses.write(i, tf.cast(loss, tf.float32)),
                    accuracies.write(i, tf.cast(accuracy_, tf.float32)))

        zeros = [tf.zeros_like(v) for v in self.meta_variables]
        _, total, losses, accuracies = tf.while_loop(
            lambda i, *_: i < tasks, body,
            (tf.constant(0), zeros, tf.TensorArray(tf.float32, tasks),
             tf.TensorArray(tf.float32, tasks)), parallel_iterations=self.parallel_tasks)
        return ([t / tf.cast(tasks * replicas, t.dtype) for t in total], losses.stack(),
                accuracies.stack())

    def _meta_train_step(self, support_x, support_y, query_x, query_y) -> dict:
        """The outer step on one device, the one place that reduces over the meta-batch and
        updates (``_replicated_train_step`` is its twin under a strategy): the meta-gradient of
        the meta-batch, applied by :meth:`_update_if_finite`."""
        before = self._snapshot()
        gradients, losses, accuracies = self.outer_gradients(support_x, support_y, query_x,
                                                             query_y)
        return self._update_if_finite(before, gradients, losses, accuracies)

    def step_state(self) -> list:
        """Every variable a meta-step may change: the meta-variables (the model's weights, the
        parts' -- Meta-SGD's rates, a relation module, ...), the optimizer's (moments, step
        count, a loss scale) and what a forward pass changes (BatchNorm's moving statistics)."""
        return [*self.meta_variables, *self.optimizer.variables,
                *self.non_trainable_variables()]

    def _snapshot(self) -> list:
        """The values of ``step_state`` before the step (tensors, read before anything of the
        step is written: the graph orders the reads first)."""
        return [tf.identity(v) for v in self.step_state()]

    def _update_if_finite(self, before, gradients, losses, accuracies) -> dict:
        """Apply the meta-gradient unless the meta-batch is not finite, and report it.

        A meta-batch is skipped whole -- nothing it changed is kept (weights, optimizer state,
        BatchNorm's moving statistics, the parts) and ``skipped`` is 1 -- if its losses, its
        meta-gradient or the statistics its forward passes wrote hold a NaN or Inf, or if the
        update itself would leave a non-finite value (an overflow in the optimizer's moments).
        The same code runs on one device and, under a strategy, in the cross-replica context
        on all-reduced gradients, so every replica and worker takes the same decision. A
        loss-scale optimizer (float16) gets the non-finite gradients: its own skip lowers the
        scale."""
        state = self.step_state()
        optimizer_variables = {id(v) for v in self.optimizer.variables}
        scaled = isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer)
        metrics = {"loss": tf.reduce_mean(losses), "accuracy": tf.reduce_mean(accuracies)}

        def restore(keep_optimizer: bool):
            for variable, value in zip(state, before):
                if not (keep_optimizer and id(variable) in optimizer_variables):
                    variable.assign(value)
            return tf.constant(1.0)

        def apply():
            self.optimizer.apply_gradients(zip(gradients, self.meta_variables))
            return tf.cond(all_finite(state), lambda: tf.constant(0.0),
                           lambda: restore(keep_optimizer=False))

        def skip():
            if scaled:  # its own skip keeps the scale dynamic (lowered after an overflow)
                self.optimizer.apply_gradients(zip(gradients, self.meta_variables))
            return restore(keep_optimizer=scaled)

        finite = all_finite([losses, *gradients, *self.non_trainable_variables()])
        metrics["skipped"] = tf.cond(finite, apply, skip)
        return metrics

    def non_trainable_variables(self) -> list:
        """What a forward pass may change besides the meta-variables (BatchNorm's moving
        statistics), of the model and the parts."""
        return list(self.model.non_trainable_variables) + [
            v for part in self.parts.values() for v in part.non_trainable_variables]

    # -- under a strategy -----------------------------------------------------------------------
    def _shard(self, batch):
        """The meta-batch as per-replica values: replica ``r`` gets the ``r``-th equal slice."""
        replicas = self.strategy.num_replicas_in_sync
        tasks = int(batch[0].shape[0])
        if tasks % replicas:
            raise ConfigError(f"a meta-batch of {tasks} tasks does not split evenly over "
                              f"{replicas} replicas: make meta_batch a multiple of {replicas}")
        size = tasks // replicas

        def local(context):
            first = context.replica_id_in_sync_group * size
            return tuple(tensor[first:first + size] for tensor in batch)

        return self.strategy.experimental_distribute_values_from_function(local)

    def _replicated_train_step(self, *batch) -> dict:
        """``_meta_train_step`` under a strategy: each replica's tasks' gradients, summed across
        replicas (and workers) in one all-reduce; the guarded update in the cross-replica
        context, where every replica sees the same gradients, losses and statistics."""
        before = self._snapshot()
        gradients, losses, accuracies = self.strategy.run(self._replica_gradients, args=batch)
        gradients = [self.strategy.experimental_local_results(g)[0] for g in gradients]
        return self._update_if_finite(before, gradients,
                                      self.strategy.gather(losses, axis=0),
                                      self.strategy.gather(accuracies, axis=0))

    def _replica_gradients(self, *batch):
        gradients, losses, accuracies = self.outer_gradients(*batch)
        context = tf.distribute.get_replica_context()
        return context.all_reduce(tf.distribute.ReduceOp.SUM, gradients), losses, accuracies

    def _replicated_test_step(self, *batch) -> dict:
        metrics = self.strategy.run(self._meta_test_step, args=batch)
        return {name: self.strategy.gather(value, axis=0) for name, value in metrics.items()}
