"""What learners do to a backbone's layers: keep Dropout-like layers to meta-training, find the
seed states of random layers, and copy the model up to its features (an embedding)."""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf

from tfmeta.learners.batchnorm import freeze_batchnorm_statistics


@contextlib.contextmanager
def stochastic_layers_off(model: keras.Model):
    """Within the block (at trace time for compiled code), Dropout-like layers pass their input
    through unchanged even in a training-mode call. The optimisation-based learners call their
    model in training mode at test time too (BatchNorm batch statistics); this keeps DropBlock and
    Dropout to meta-training."""
    from tfmeta.models import DropBlock, nested_layers

    noisy = [(layer, "stddev" if isinstance(layer, keras.layers.GaussianNoise) else "rate")
             for layer in nested_layers(model)
             if isinstance(layer, (keras.layers.Dropout, keras.layers.GaussianDropout,
                                   keras.layers.AlphaDropout, keras.layers.GaussianNoise,
                                   DropBlock))]
    saved = [getattr(layer, name) for layer, name in noisy]
    for layer, name in noisy:
        setattr(layer, name, 0.0)
    try:
        yield
    finally:
        for (layer, name), value in zip(noisy, saved):
            setattr(layer, name, value)


def seed_state_positions(model: keras.Model) -> list:
    """Where in ``model.non_trainable_variables`` the states of Keras seed generators are (those
    of ``Dropout`` and other random layers)."""
    from tfmeta.models import nested_layers

    states = set()
    for layer in nested_layers(model):
        for value in vars(layer).values():
            for item in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(item, keras.random.SeedGenerator):
                    states.add(id(item.state))
    return [i for i, v in enumerate(model.non_trainable_variables) if id(v) in states]


def embedding_copy(model: keras.Model, features, images=None) -> keras.Model:
    """A copy of ``model`` from its inputs to ``features`` (a tensor of its graph), flattened;
    with ``images``, BatchNorm keeps their statistics."""
    body = keras.Model(single_input(model.inputs), features)
    copy = keras.models.clone_model(body)
    copy.set_weights(body.get_weights())
    if images is not None:
        with stochastic_layers_off(copy):
            freeze_batchnorm_statistics(copy, tf.convert_to_tensor(images, tf.float32))
    outputs = copy.outputs[0]
    if len(outputs.shape) > 2:
        outputs = keras.layers.Flatten(name="flatten_features")(outputs)
    return keras.Model(single_input(copy.inputs), outputs, name="embedding")


def single_input(inputs):
    """A model's one input as a tensor, not a list of one: Keras then takes a tensor when the
    model is called (a list of one warns that the structure does not match)."""
    return inputs[0] if len(inputs) == 1 else inputs
