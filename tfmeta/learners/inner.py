"""The inner loop of optimisation-based meta-learning, as a pure function."""

from __future__ import annotations

import tensorflow as tf

from tfmeta.learners.losses import accuracy, cross_entropy


INNER_REDUCTIONS = ("sum/shots", "mean")
# Inner loops of at most this many steps are unrolled in the graph; longer ones (50 test-time steps)
# run as a graph loop, so that tracing does not grow with them. A tf.while_loop costs a few control
# ops per loop variable and step, which is much of the work of a step on a 5-image support set:
# unrolled, Reptile's 5 meta-training steps ran 1.5x faster (benchmarks/throughput.py).
UNROLL_STEPS = 10


def check_inner_options(inner_steps: int, test_inner_steps, inner_reduction: str = "mean") -> None:
    """The checks every optimisation learner's config shares: at least one inner step in
    meta-training and at test (``None``: as in meta-training), and a known inner reduction."""
    if inner_steps < 1 or (test_inner_steps is not None and test_inner_steps < 1):
        raise ValueError("inner steps must be at least 1")
    if inner_reduction not in INNER_REDUCTIONS:
        raise ValueError(f"inner_reduction must be 'sum/shots' or 'mean', got {inner_reduction!r}")


def sgd_inner_loop(forward, params, x, y, steps: int, learning_rate, differentiable: bool = True,
                   first_order: bool = False, loss_fn=cross_entropy, recompute: bool = False,
                   fixed=(), with_metrics: bool = False, loss_scale=None, second_order=None):
    """``steps`` plain gradient steps on ``loss_fn(forward(params, x), y)``.

    ``phi_0 = params``; ``phi_{t+1} = phi_t - learning_rate * grad L(phi_t)``.

    Args:
        forward: ``(params, x) -> logits``.
        params: list of weight tensors (not variables).
        learning_rate: a scalar, or one tensor per parameter (Meta-SGD).
        differentiable: keep the chain differentiable with respect to ``params`` (MAML). With
            ``False`` every step is cut from the graph (Reptile, evaluation).
        first_order: keep the chain but treat inner gradients as constants (first-order MAML):
            ``d phi_T / d params`` becomes the identity.
        loss_fn: ``(logits, labels) -> scalar``; mean cross-entropy by default.
        fixed: tensors that come before ``params`` in ``forward``'s parameter list and are not
            adapted (ANIL's body): ``forward(fixed + phi, x)``.
        recompute: gradient checkpointing: each step keeps only its inputs and outputs for the
            outer backward pass and recomputes its activations there (``tf.recompute_grad``),
            so memory no longer grows with the activations of every step; same gradients.
        with_metrics: also return the loss and accuracy of the last step's forward pass (on
            ``x`` at ``phi_{steps-1}``, before its update): training figures at no extra cost.
        loss_scale: float16 mixed precision: each step differentiates ``loss * loss_scale`` and
            divides the gradients by it, so that small gradients do not underflow in float16
            (the outer optimizer's dynamic scale; an overflow makes the meta-gradient non-finite
            and the outer loss-scale optimizer skips the step and lowers the scale).
        second_order: a 0 / 1 tensor that switches the second-order term off / on inside one
            graph (derivative-order annealing, MAML++): the inner gradients' values are the
            same, their derivative is multiplied by it.
    Returns:
        the adapted parameters ``phi_steps`` as a list of tensors; with ``with_metrics``, the
        tuple ``(phi_steps, loss, accuracy)``.
    """
    per_parameter = isinstance(learning_rate, (list, tuple))
    n, fixed = len(params), list(fixed)
    rates_given = list(learning_rate) if per_parameter else []
    last = {}  # the last step's loss and logits, for with_metrics

    def step(*tensors):  # (phi_t, rates if per parameter, fixed) -> phi_{t+1}
        phi = list(tensors[:n])
        rates = list(tensors[n:n + len(rates_given)]) or [learning_rate] * n
        frozen = list(tensors[n + len(rates_given):])
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(phi)
            logits = forward(frozen + phi, x)
            loss = loss_fn(logits, y)
            scaled_loss = scaled(loss, loss_scale)
        last.update(loss=loss, logits=logits)
        grads = unscaled(tape.gradient(scaled_loss, phi), loss_scale)
        if first_order or not differentiable:
            grads = [tf.stop_gradient(g) for g in grads]
        elif second_order is not None:
            grads = [tf.stop_gradient(g) + tf.cast(second_order, g.dtype) * (g - tf.stop_gradient(g))
                     for g in grads]
        return [p - r * g for p, r, g in zip(phi, rates, grads)]

    if recompute and differentiable:
        step = checkpointed(step)
    params = list(params)
    if not differentiable and steps > UNROLL_STEPS:
        # Nothing to differentiate: one loop in the graph instead of `steps` copies of the step,
        # so that tracing and graph optimisation do not grow with the steps (50 test steps).
        def body(t, phi, loss, accuracy_):
            phi = step(*[tf.stop_gradient(p) for p in phi], *rates_given, *fixed)
            return t + 1, phi, tf.cast(last["loss"], tf.float32), accuracy(last["logits"], y)

        _, params, loss, accuracy_ = tf.while_loop(
            lambda t, *_: t < steps, body,
            (tf.constant(0), params, tf.zeros([], tf.float32), tf.zeros([], tf.float32)))
        params = [tf.stop_gradient(p) for p in params]
        return (params, loss, accuracy_) if with_metrics else params
    for _ in range(steps):
        params = list(step(*params, *rates_given, *fixed))
        if not differentiable:
            params = [tf.stop_gradient(p) for p in params]
    if with_metrics:
        if recompute and differentiable:
            raise ValueError("with_metrics is not available with recompute")
        return params, last["loss"], accuracy(last["logits"], y)
    return params


def scaled(loss, loss_scale=None):
    """``loss * loss_scale`` (inside the tape), or ``loss`` without a (float16) loss scale."""
    return loss if loss_scale is None else loss * tf.cast(loss_scale, loss.dtype)


def unscaled(gradients, loss_scale=None):
    """Gradients of :func:`scaled` losses divided by the scale again."""
    if loss_scale is None:
        return gradients
    return [g / tf.cast(loss_scale, g.dtype) for g in gradients]


def checkpointed(step):
    """``step`` (tensors -> list of tensors) with gradient checkpointing: the backward pass runs
    ``step`` again under a tape instead of keeping its activations from the forward pass. Unlike
    ``tf.recompute_grad``, ``step`` may take gradients itself (an inner step does): the recomputed
    inner gradient is differentiated again, so the second-order term is kept."""
    def wrapped(*inputs):
        @tf.custom_gradient
        def run(*inputs):
            def gradient(*upstream):
                # The recomputation waits for the upstream gradient: without that edge a graph
                # runs it as soon as its inputs exist, in the forward pass, and keeps its
                # activations for the backward pass (Grappler may also merge it with the first
                # computation): no memory saved.
                with tf.control_dependencies(upstream):
                    again_inputs = [tf.identity(t) for t in inputs]
                with tf.GradientTape(watch_accessed_variables=False) as tape:
                    tape.watch(again_inputs)
                    again = step(*again_inputs)
                return tape.gradient(again, again_inputs, output_gradients=list(upstream),
                                     unconnected_gradients=tf.UnconnectedGradients.ZERO)
            return step(*inputs), gradient
        return run(*inputs)
    return wrapped


def minibatch_indices(size, batch_size, steps: int, seed):
    """``[steps, batch_size]`` indices into ``size`` examples: epochs of stateless random
    permutations laid end to end and cut into batches (Nichol et al.'s ``_mini_batches`` without
    replacement), so that every example is used once per epoch. ``size`` and ``batch_size`` may be
    tensors; ``seed`` is a ``[2]`` integer tensor: the same seed, the same batches."""
    epochs = -(-(steps * batch_size) // size)  # ceil
    order = tf.argsort(tf.random.stateless_uniform([epochs, size], seed), axis=1)
    return tf.reshape(tf.reshape(order, [-1])[:steps * batch_size], [steps, batch_size])


def adam_inner_loop(forward, params, x, y, steps: int, learning_rate: float,
                    batch_size: int | None = None, seed=(0, 0), beta1: float = 0.0,
                    beta2: float = 0.999, epsilon: float = 1e-8, loss_fn=cross_entropy,
                    with_metrics: bool = False, loss_scale=None):
    """``steps`` Adam steps (fresh moments) on minibatches of ``(x, y)``, with no graph to
    ``params`` (Reptile's inner loop). The update is TensorFlow's / Keras' Adam::

        m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
        phi -= learning_rate * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + epsilon)

    ``batch_size=None``, or at least the number of examples, trains on all of ``x`` every step;
    otherwise on minibatches from :func:`minibatch_indices` with ``seed``. ``with_metrics``:
    return ``(phi, loss, accuracy)``, the figures of the last step's minibatch before its update.
    ``loss_scale``: as in :func:`sgd_inner_loop`.
    """
    params = [tf.stop_gradient(p) for p in params]
    size = x.shape[0] if x.shape[0] is not None else tf.shape(x)[0]
    if batch_size is None or (isinstance(size, int) and batch_size >= size):
        batches = None
    else:
        batch_size = batch_size if isinstance(size, int) else tf.minimum(batch_size, size)
        batches = minibatch_indices(size, batch_size, steps, seed)

    def step(t, params, m, v, loss, accuracy_):
        if batches is None:
            xb, yb = x, y
        else:
            xb, yb = tf.gather(x, batches[t - 1]), tf.gather(y, batches[t - 1])
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(params)
            logits = forward(params, xb)
            loss = loss_fn(logits, yb)
            scaled_loss = scaled(loss, loss_scale)
        grads = unscaled(tape.gradient(scaled_loss, params), loss_scale)
        loss, accuracy_ = tf.cast(loss, tf.float32), accuracy(logits, yb)  # reported figures
        time = tf.cast(t, params[0].dtype)
        rate = learning_rate * tf.sqrt(1 - beta2 ** time) / (1 - beta1 ** time)
        m = [beta1 * mi + (1 - beta1) * g for mi, g in zip(m, grads)]
        v = [beta2 * vi + (1 - beta2) * g * g for vi, g in zip(v, grads)]
        params = [p - rate * mi / (tf.sqrt(vi) + epsilon) for p, mi, vi in zip(params, m, v)]
        return t + 1, params, m, v, loss, accuracy_

    zeros = [tf.zeros_like(p) for p in params]
    state = (1, params, zeros, list(zeros), tf.zeros([], tf.float32), tf.zeros([], tf.float32))
    if steps <= UNROLL_STEPS:  # meta-training's few steps, unrolled
        for _ in range(steps):
            state = step(*state)
        _, params, _, _, loss, accuracy_ = state
    else:  # a graph loop: test-time adaptation runs 50 steps per task
        _, params, _, _, loss, accuracy_ = tf.while_loop(
            lambda t, *_: t <= steps, step, (tf.constant(1),) + state[1:])
    params = [tf.stop_gradient(p) for p in params]
    return (params, loss, accuracy_) if with_metrics else params
