"""MetaOptNet-SVM (Lee, Maji, Ravichandran & Soatto, CVPR 2019, arXiv:1904.03758): a multi-class
linear SVM head on support embeddings, solved in the dual by a fixed number of differentiable
iterations, so that the query loss trains the embedding through the solver.

The Crammer-Singer multi-class SVM (Crammer & Singer, JMLR 2001) in its dual, per task, with
support embeddings X [S, D], kernel K = X X^T and one-hot labels E [S, ways]::

    max_tau  -1/2 sum_ij K_ij <tau_i, tau_j> + sum_i tau_i[y_i]
    s.t.     tau_i <= C e_{y_i},  sum_k tau_i[k] = 0                   for every support image i
    w_k = sum_i tau_i[k] x_i,     logits(q) = scale * <w_k, x_q> + bias

With u_i = C e_{y_i} - tau_i the constraints say u_i lies on the simplex scaled by C, so the solver
is accelerated projected gradient (FISTA) with step 1 / ||K||_F and a sort-based simplex projection
(Duchi et al., ICML 2008): every operation is differentiable almost everywhere. MetaOptNet solved
the same QP with a fixed number of interior-point iterations; ``iterations`` plays that role.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from tfmeta.learners.metric import CalibratedMetricLearner


@dataclasses.dataclass
class SVMConfig:
    """Attributes:
        C: the SVM's box constraint (0.1 in MetaOptNet).
        iterations: solver iterations while meta-training; ``test_iterations`` at test time.
        scale: initial meta-learned logit scale.
    """

    C: float = 0.1
    iterations: int = 15
    test_iterations: int = 50
    scale: float = 10.0

    def __post_init__(self):
        if self.C <= 0 or self.iterations < 1 or self.test_iterations < 1:
            raise ValueError("C must be positive and iterations at least 1")


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


def svm_dual(kernel, targets, C, iterations):
    """tau ``[tasks, S, ways]`` solving the Crammer-Singer dual by FISTA on u = C E - tau."""
    step = 1.0 / (tf.norm(kernel, axis=[-2, -1])[:, None, None] + 1e-6)    # 1 / ||K||_F <= 1 / L
    u = C * tf.ones_like(targets) / tf.cast(tf.shape(targets)[-1], targets.dtype)
    momentum_point, t = u, 1.0
    for _ in range(iterations):
        tau = C * targets - momentum_point
        gradient = targets - tf.einsum("tij,tjk->tik", kernel, tau)        # d(-objective)/du
        u_next = project_to_simplex(momentum_point - step * gradient, C)
        t_next = (1.0 + (1.0 + 4.0 * t * t) ** 0.5) / 2.0
        momentum_point = u_next + ((t - 1.0) / t_next) * (u_next - u)
        u, t = u_next, t_next
    return C * targets - u


class SVMHead(CalibratedMetricLearner):
    """MetaOptNet-SVM head on any Keras embedding model."""

    name = "svm"
    config_class = SVMConfig

    def score(self, support, support_y, query, ways, training=False):
        targets = tf.one_hot(support_y, ways, dtype=support.dtype)
        kernel = tf.einsum("tsd,trd->tsr", support, support)
        iterations = self.config.iterations if training else self.config.test_iterations
        tau = svm_dual(kernel, targets, self.config.C, iterations)
        return self.calibrate(tf.einsum("tqd,tsd,tsk->tqk", query, support, tau))
