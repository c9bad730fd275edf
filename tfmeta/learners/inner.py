"""The inner loop of optimisation-based meta-learning, as a pure function."""

from __future__ import annotations

import tensorflow as tf

from tfmeta.learners.losses import cross_entropy


def sgd_inner_loop(forward, params, x, y, steps: int, learning_rate, differentiable: bool = True,
                   first_order: bool = False):
    """``steps`` plain gradient steps on the loss of ``forward(params, x)`` against labels ``y``.

    ``phi_0 = params``; ``phi_{t+1} = phi_t - learning_rate * grad L(phi_t)``.

    Args:
        forward: ``(params, x) -> logits``.
        params: list of weight tensors (not variables).
        learning_rate: a scalar, or one tensor per parameter (Meta-SGD).
        differentiable: keep the chain differentiable with respect to ``params`` (MAML). With
            ``False`` every step is cut from the graph (Reptile, evaluation).
        first_order: keep the chain but treat inner gradients as constants (first-order MAML):
            ``d phi_T / d params`` becomes the identity.
    Returns:
        the adapted parameters ``phi_steps`` as a list of tensors.
    """
    rates = learning_rate if isinstance(learning_rate, (list, tuple)) else [learning_rate] * len(params)
    params = list(params)
    for _ in range(steps):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(params)
            loss = cross_entropy(forward(params, x), y)
        grads = tape.gradient(loss, params)
        if first_order or not differentiable:
            grads = [tf.stop_gradient(g) for g in grads]
        params = [p - r * g for p, r, g in zip(params, rates, grads)]
        if not differentiable:
            params = [tf.stop_gradient(p) for p in params]
    return params
