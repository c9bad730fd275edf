"""Pre-training the backbone on every training class before meta-training.

Chen et al. (ICLR 2019, "A Closer Look at Few-shot Classification"), Tian et al. (ECCV 2020,
"Rethinking Few-Shot Image Classification: a Good Embedding Is All You Need") and Chen et al.
(ICCV 2021, "Meta-Baseline") start episodic training from a backbone trained as an ordinary
classifier of all training classes at once::

    g = a linear classifier over the C training classes, on top of the backbone f
    minimise cross-entropy(g(f(x)), y) by Adam over minibatches of (augmented) training images
    drop g; meta-train from f

A learner whose model ends in its own classifier head (MAML and the other optimisation learners)
pre-trains the layers below that head; the head is left as initialised.
"""

from __future__ import annotations

import logging

import keras
import numpy as np
import tensorflow as tf

from tfmeta.data.batches import ClassBatchSampler
from tfmeta.learners.losses import accuracy, cross_entropy


def body_of(learner) -> keras.Model:
    """The part of ``learner.model`` to pre-train: all of an embedding model, or every layer
    below the head of a classifier (sharing its weights)."""
    model = learner.model
    if learner.backbone_output != "logits":
        return model
    return keras.Model(model.inputs, model.layers[-2].output)


def pretrain(learner, source, steps: int, batch_size: int = 64, learning_rate: float = 1e-3,
             augment: str | None = None, seed: int = 0, log=None) -> dict:
    """Train ``body_of(learner)`` with a temporary linear head over every class of ``source`` for
    ``steps`` minibatches (Adam, cosine-decayed learning rate). Returns the last loss and
    accuracy."""
    log = log or logging.getLogger("tfmeta").info  # the CLI shows it; --quiet hides it
    body = body_of(learner)
    inputs = keras.Input(learner.input_shape)
    features = keras.layers.Flatten()(body(inputs, training=True))
    logits = keras.layers.Dense(source.num_classes, name="pretrain_head")(features)
    classifier = keras.Model(inputs, logits)
    optimizer = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(
        learning_rate, steps))
    batches = ClassBatchSampler(source, batch_size, seed=seed, augment=augment)

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            out = classifier(x, training=True)
            loss = cross_entropy(out, y)
        variables = classifier.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss, accuracy(out, y)

    stream = (tf.data.Dataset.range(steps)
              .map(batches.batch_at, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
              .prefetch(tf.data.AUTOTUNE))
    losses, accuracies = [], []
    for step, (x, y) in enumerate(stream, 1):
        loss, acc = train_step(x, y)
        losses.append(float(loss))
        accuracies.append(float(acc))
        if step % max(1, steps // 10) == 0 or step == steps:
            log(f"pre-training {step}/{steps}: loss {np.mean(losses[-50:]):.3f}, "
                f"accuracy {np.mean(accuracies[-50:]):.3f}")
    return {"pretrain_loss": float(np.mean(losses[-50:])),
            "pretrain_accuracy": float(np.mean(accuracies[-50:]))}
