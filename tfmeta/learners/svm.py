"""MetaOptNet-SVM (Lee, Maji, Ravichandran & Soatto, CVPR 2019, arXiv:1904.03758): a multi-class
linear SVM head on support embeddings, solved in the dual by a fixed number of differentiable
iterations, so that the query loss trains the embedding through the solver.

The Crammer-Singer multi-class SVM (Crammer & Singer, JMLR 2001) in its dual, per task, with
support embeddings X [S, D], kernel K = X X^T and one-hot labels E [S, ways]::

    max_tau  -1/2 sum_ij K_ij <tau_i, tau_j> + sum_i tau_i[y_i]
    s.t.     tau_i <= C e_{y_i},  sum_k tau_i[k] = 0                   for every support image i
    w_k = sum_i tau_i[k] x_i,     logits(q) = scale * <w_k, x_q>

With u_i = C e_{y_i} - tau_i the constraints say u_i lies on the simplex scaled by C, so the solver
is accelerated projected gradient (FISTA) with step 1 / lambda_max(K), adaptive restart and a
sort-based simplex projection (Duchi et al., ICML 2008): every operation is differentiable almost
everywhere. Like MetaOptNet's QP solver, it runs to a tolerance (the duality gap), with the same
settings in meta-training and at test.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from tfmeta.learners.metric import CalibratedMetricLearner
from tfmeta.learners.registry import register


@dataclasses.dataclass
class SVMConfig:
    """Attributes (defaults: MetaOptNet's):
        C: the SVM's box constraint (0.1 in MetaOptNet).
        iterations: most solver iterations, in meta-training and at test alike.
        tolerance: the solver stops once the duality gap is at most this fraction of the primal
            objective (1e-3; 5-way 5-shot Conv4 episodes need about 300 iterations).
        scale: initial meta-learned logit scale (1.0 in MetaOptNet's code).

    Label smoothing (MetaOptNet uses 0.1 on mini-ImageNet), as for every learner:
    ``train.label_smoothing`` (``create(label_smoothing=)``).
    """

    C: float = 0.1
    iterations: int = 1000
    tolerance: float = 1e-3
    scale: float = 1.0

    def __post_init__(self):
        if self.C <= 0 or self.iterations < 1 or self.tolerance < 0:
            raise ValueError("C must be positive, iterations at least 1, tolerance >= 0")


def project_to_simplex(v, radius):
    """Euclidean projection of each row of ``v [..., n]`` on ``{u >= 0, sum u = radius}``."""
    n = tf.shape(v)[-1]
    mu = tf.sort(v, axis=-1, direction="DESCENDING")
    cumulative = tf.cumsum(mu, axis=-1) - radius
    index = tf.cast(tf.range(1, n + 1), v.dtype)
    positive = tf.cast(mu - cumulative / index > 0, v.dtype)
    rho = tf.reduce_sum(positive, axis=-1, keepdims=True)                 # >= 1 always
    theta = tf.gather(cumulative, tf.cast(rho, tf.int32) - 1, batch_dims=len(v.shape) - 1) / rho
    return tf.maximum(v - theta, 0.0)


def duality_gap(kernel, targets, tau, C):
    """``(gap, primal)`` per task of a feasible dual point ``tau``: the primal objective
    ``1/2 ||W||^2 + C sum_i max_k (1 - [k = y_i] + <w_k - w_{y_i}, x_i>)`` at ``W = tau^T X`` minus
    the dual objective ``-1/2 ||W||^2 + sum_i tau_i[y_i]``. Zero exactly at the optimum."""
    scores = tf.einsum("tij,tjk->tik", kernel, tau)                        # <w_k, x_i>
    norm = tf.einsum("tik,tik->t", tau, scores)                            # ||W||^2
    true_score = tf.reduce_sum(scores * targets, -1, keepdims=True)
    hinge = tf.reduce_sum(tf.reduce_max(1.0 - targets + scores - true_score, -1), -1)
    primal = 0.5 * norm + C * hinge
    dual = -0.5 * norm + tf.reduce_sum(tau * targets, [-2, -1])
    return primal - dual, primal


def largest_eigenvalue(kernel, iterations: int = 30):
    """An upper estimate of each task's largest kernel eigenvalue (the gradient's Lipschitz
    constant): power iteration, 2 % margin, never above ``||K||_F`` (a true bound). Constant
    with respect to the embeddings: it only sets the step size."""
    kernel = tf.stop_gradient(kernel)
    vector = tf.ones_like(kernel[..., :1])
    for _ in range(iterations):
        vector = tf.einsum("tij,tjk->tik", kernel, vector)
        vector /= tf.norm(vector, axis=-2, keepdims=True) + 1e-12
    rayleigh = tf.reduce_sum(vector * tf.einsum("tij,tjk->tik", kernel, vector), [-2, -1])
    return tf.minimum(1.02 * rayleigh, tf.norm(kernel, axis=[-2, -1])) + 1e-6


def svm_dual(kernel, targets, C, iterations: int, tolerance: float = 0.0):
    """tau ``[tasks, S, ways]`` solving the Crammer-Singer dual by FISTA on u = C E - tau, with
    step 1 / lambda_max(K) and adaptive restart (O'Donoghue & Candes, 2015: the momentum is reset
    whenever it points uphill, which keeps FISTA's rate without its oscillations).

    Each task stops once its duality gap is at most ``tolerance`` times its primal objective
    (its iterate is then frozen, so a task's solution does not depend on the other tasks solved
    beside it), or after ``iterations`` iterations. A graph loop: gradients flow through the
    iterations run."""
    step = 1.0 / largest_eigenvalue(kernel)[:, None, None]
    u = C * tf.ones_like(targets) / tf.cast(tf.shape(targets)[-1], targets.dtype)

    def converged(u):  # [tasks]
        if tolerance <= 0:
            return tf.zeros(tf.shape(u)[:1], tf.bool)
        gap, primal = duality_gap(kernel, targets, C * targets - u, C)
        return gap <= tolerance * tf.abs(primal)

    def iteration(i, u, momentum_point, t, done):
        tau = C * targets - momentum_point
        gradient = targets - tf.einsum("tij,tjk->tik", kernel, tau)        # d(-objective)/du
        u_next = project_to_simplex(momentum_point - step * gradient, C)
        uphill = tf.reduce_sum((momentum_point - u_next) * (u_next - u), [-2, -1],
                               keepdims=True) > 0
        t = tf.where(uphill, tf.ones_like(t), t)
        t_next = (1.0 + tf.sqrt(1.0 + 4.0 * t * t)) / 2.0
        momentum_next = u_next + ((t - 1.0) / t_next) * (u_next - u)
        frozen = done[:, None, None]
        u_next = tf.where(frozen, u, u_next)
        return (i + 1, u_next, tf.where(frozen, momentum_point, momentum_next),
                tf.where(frozen, t, t_next), converged(u_next))

    def running(i, u, momentum_point, t, done):
        return tf.logical_and(i < iterations, tf.logical_not(tf.reduce_all(done)))

    _, u, _, _, _ = tf.while_loop(running, iteration,
                                  (tf.constant(0), u, u, tf.ones_like(step), converged(u)))
    return C * targets - u


@register
class SVMHead(CalibratedMetricLearner):
    """MetaOptNet-SVM head on any Keras embedding model."""

    name = "svm"
    xla_unsupported = ("the number of classes is read from the support labels, and its dual "
                       "solver's loop keeps a gradient accumulator XLA does not compile")
    config_class = SVMConfig

    def score(self, support, support_y, query, ways, training=False):
        targets = tf.one_hot(support_y, ways, dtype=support.dtype)
        kernel = tf.einsum("tsd,trd->tsr", support, support)
        tau = svm_dual(kernel, targets, self.config.C, self.config.iterations,
                       self.config.tolerance)
        return self.calibrate(tf.einsum("tqd,tsd,tsk->tqk", query, support, tau))
