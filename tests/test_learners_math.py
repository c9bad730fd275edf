"""ANIL, Meta-SGD and Prototypical Networks against independent computations."""

import keras
import numpy as np
import tensorflow as tf

from tfmeta.learners import ANIL, MAMLConfig, MetaSGD, MetaSGDConfig, ProtoNet, ProtoNetConfig
from tfmeta.data import EpisodeConfig
from tfmeta.learners.base import cross_entropy
from tfmeta.learners.protonet import prototypes


def _classifier(ways=3):
    keras.utils.set_random_seed(4)
    inputs = keras.Input((5,))
    x = keras.layers.Dense(7, activation="tanh")(inputs)
    return keras.Model(inputs, keras.layers.Dense(ways, name="head")(x))


def _batch(tasks=2, seed=0):
    rng = np.random.default_rng(seed)
    sx = rng.normal(size=(tasks, 6, 5)).astype(np.float32)
    qx = rng.normal(size=(tasks, 9, 5)).astype(np.float32)
    sy = np.tile([0, 1, 2], (tasks, 2)).astype(np.int32)
    qy = np.tile([0, 1, 2], (tasks, 3)).astype(np.int32)
    return tf.constant(sx), tf.constant(sy), tf.constant(qx), tf.constant(qy)


def test_anil_inner_loop_leaves_the_body_unchanged():
    learner = ANIL(_classifier(), MAMLConfig(inner_steps=3, inner_lr=0.5), compiled=False)
    sx, sy, _, _ = _batch()
    theta = learner.weights()
    phi = learner.inner_loop(theta, sx[0], sy[0], 3)
    assert learner.head_size == 2
    for before, after in zip(theta[:2], phi[:2]):
        np.testing.assert_array_equal(before.numpy(), after.numpy())
    for before, after in zip(theta[2:], phi[2:]):
        assert not np.allclose(before.numpy(), after.numpy())
    grads, _, _ = learner.meta_gradients(*_batch())
    assert all(float(tf.norm(g)) > 0 for g in grads)  # the body still learns in the outer loop


def test_meta_sgd_rates_get_a_meta_gradient_and_shape_the_step():
    learner = MetaSGD(_classifier(), MetaSGDConfig(), compiled=False)
    for alpha in learner.rates.alpha:  # the paper's initialisation
        assert 0.005 <= float(tf.reduce_min(alpha)) < float(tf.reduce_max(alpha)) <= 0.1
    grads, _, _ = learner.meta_gradients(*_batch())
    n = len(learner.model.trainable_variables)
    assert len(grads) == 2 * n
    assert all(float(tf.norm(g)) > 0 for g in grads[n:])
    # One inner step is theta - alpha * grad, elementwise.
    learner.rates.alpha[0].assign(tf.random.uniform(learner.rates.alpha[0].shape))
    sx, sy, _, _ = _batch()
    theta = learner.weights()
    with tf.GradientTape() as tape:
        tape.watch(theta)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=sy[0], logits=learner.forward(theta, sx[0])))
    g = tape.gradient(loss, theta)
    phi = learner.inner_loop(theta, sx[0], sy[0], 1)
    expected = theta[0].numpy() - learner.rates.alpha[0].numpy() * g[0].numpy()
    np.testing.assert_allclose(phi[0].numpy(), expected, rtol=1e-5, atol=1e-6)
    before = learner.rates.alpha[1].numpy()
    learner.meta_train_step(_batch())  # rates are updated by the outer optimizer
    assert not np.allclose(learner.rates.alpha[1].numpy(), before)


def _embedding():
    keras.utils.set_random_seed(5)
    inputs = keras.Input((5,))
    return keras.Model(inputs, keras.layers.Dense(4)(inputs))


def test_prototypes_and_logits_match_numpy():
    rng = np.random.default_rng(1)
    support = rng.normal(size=(2, 6, 4)).astype(np.float32)
    labels = np.array([[0, 1, 2, 0, 1, 2], [2, 2, 1, 0, 0, 1]], np.int32)
    query = rng.normal(size=(2, 5, 4)).astype(np.float32)
    centres = np.stack([[support[t][labels[t] == k].mean(0) for k in range(3)] for t in range(2)])
    np.testing.assert_allclose(prototypes(support, labels, 3).numpy(), centres, rtol=1e-6)
    learner = ProtoNet(_embedding(), compiled=False)
    expected = -((query[:, :, None] - centres[:, None]) ** 2).sum(-1)
    np.testing.assert_allclose(learner.score(support, labels, query, 3).numpy(), expected,
                               rtol=1e-5)
    cosine = ProtoNet(_embedding(), ProtoNetConfig("cosine", 10.0), compiled=False)
    qn = query / np.linalg.norm(query, axis=-1, keepdims=True)
    cn = centres / np.linalg.norm(centres, axis=-1, keepdims=True)
    np.testing.assert_allclose(cosine.score(support, labels, query, 3).numpy(),
                               10 * np.einsum("tqd,twd->tqw", qn, cn), rtol=1e-5)


def test_protonet_adapted_classifier_matches_episode_logits():
    learner = ProtoNet(_embedding(), compiled=False)
    sx, sy, qx, _ = _batch(tasks=1)
    classifier = learner.adapt(sx[0], sy[0])
    expected = learner.episode_logits(sx, sy, qx, training=False)[0]
    np.testing.assert_allclose(classifier(qx[0]).numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)


def test_matching_attention_sums_to_one_and_matches_numpy():
    from tfmeta.learners import MatchingConfig, MatchingNetwork
    from tfmeta.learners.matching import attention

    rng = np.random.default_rng(2)
    support = rng.normal(size=(2, 6, 4)).astype(np.float32)
    query = rng.normal(size=(2, 5, 4)).astype(np.float32)
    labels = np.array([[0, 1, 2, 0, 1, 2]] * 2, np.int32)
    a = attention(support, query, 3.0).numpy()
    np.testing.assert_allclose(a.sum(-1), 1, rtol=1e-6)
    sn = support / np.linalg.norm(support, axis=-1, keepdims=True)
    qn = query / np.linalg.norm(query, axis=-1, keepdims=True)
    e = np.exp(3.0 * np.einsum("tqd,tsd->tqs", qn, sn))
    np.testing.assert_allclose(a, e / e.sum(-1, keepdims=True), rtol=1e-5)
    learner = MatchingNetwork(_embedding(), MatchingConfig(3.0), compiled=False)
    p = np.exp(learner.score(support, labels, query, 3).numpy())
    expected = np.stack([a[..., labels[0] == k].sum(-1) for k in range(3)], -1)
    np.testing.assert_allclose(p, expected, rtol=1e-5)


def test_ridge_head_matches_numpy_solve_in_both_forms():
    from tfmeta.learners.ridge import ridge_weights

    rng = np.random.default_rng(3)
    for shots, dim in ((6, 10), (12, 4)):  # Woodbury (S < D) and primal (S >= D)
        x = rng.normal(size=(2, shots, dim))
        y = np.eye(3)[rng.integers(0, 3, (2, shots))]
        w = ridge_weights(tf.constant(x), tf.constant(y), 0.7).numpy()
        # regression: a served few-shot model sees support sets of unknown size
        unknown = tf.TensorSpec([None, None, None], tf.float64)
        solve = tf.function(lambda a, b: ridge_weights(a, b, 0.7), input_signature=[unknown] * 2)
        w_dynamic = solve(tf.constant(x), tf.constant(y)).numpy()
        for t in range(2):
            expected = np.linalg.solve(x[t].T @ x[t] + 0.7 * np.eye(dim), x[t].T @ y[t])
            np.testing.assert_allclose(w[t], expected, rtol=1e-6, atol=1e-9)
            np.testing.assert_allclose(w_dynamic[t], expected, rtol=1e-6, atol=1e-9)


def test_ridge_head_backpropagates_into_the_embedding():
    from tfmeta.learners import RidgeHead

    learner = RidgeHead(_embedding(), compiled=False)
    before = [v.numpy() for v in learner.meta_variables]
    learner.meta_train_step(_batch())
    after = [v.numpy() for v in learner.meta_variables]
    assert all(not np.allclose(b, a) for b, a in zip(before, after))


def test_siamese_pairs_and_one_shot_rule_match_numpy():
    from tfmeta.learners import SiameseNetwork

    learner = SiameseNetwork(_embedding(), compiled=False)
    rng = np.random.default_rng(4)
    support = rng.normal(size=(1, 6, 4)).astype(np.float32)
    query = rng.normal(size=(1, 5, 4)).astype(np.float32)
    labels = np.array([[0, 1, 2, 0, 1, 2]], np.int32)
    w, b = [v.numpy() for v in learner.pair_head.weights]
    pairs = np.abs(query[0][:, None] - support[0][None]) @ w[:, 0] + b[0]      # [Q, S]
    np.testing.assert_allclose(learner.pair_logits(support, query)[0].numpy(), pairs, rtol=1e-5)
    logits = learner.score(support, labels, query, 3)[0].numpy()
    np.testing.assert_allclose(logits, np.stack([pairs[:, labels[0] == k].max(1)
                                                 for k in range(3)], 1), rtol=1e-5)
    # Balanced loss: same and different pairs weigh half each.
    qy = np.array([[0, 1, 2, 0, 1]], np.int32)
    loss, _ = learner.episode_loss(support, labels, query, qy, 3)
    same = (qy[0][:, None] == labels[0][None]).astype(np.float64)
    bce = np.logaddexp(0, pairs) - same * pairs
    expected = 0.5 * (bce * same).sum() / same.sum() + 0.5 * (bce * (1 - same)).sum() / (1 - same).sum()
    np.testing.assert_allclose(float(loss[0]), expected, rtol=1e-5)  # one loss per task


def test_relation_scores_pair_summed_class_maps_with_queries():
    from tfmeta.learners import RelationNetwork
    from tfmeta.models import conv4

    keras.utils.set_random_seed(6)
    learner = RelationNetwork(conv4((28, 28, 1), width=8, flatten=False, pooled_blocks=2),
                              compiled=False)
    rng = np.random.default_rng(5)
    support = rng.normal(size=(1, 4, 7, 7, 8)).astype(np.float32)
    query = rng.normal(size=(1, 3, 7, 7, 8)).astype(np.float32)
    labels = np.array([[0, 1, 0, 1]], np.int32)
    # shot_pooling="mean" (the paper's default sums): the class's mean map, the same module
    from tfmeta.learners.relation import RelationConfig

    mean = RelationNetwork(learner.model, RelationConfig(shot_pooling="mean"), compiled=False)
    mean.relation = learner.relation
    scores, means = (scorer.score(support, labels, query, 2).numpy() for scorer in (learner, mean))
    assert scores.shape == (1, 3, 2) and np.all((scores > 0) & (scores < 1))
    for got, pool in ((scores, np.sum), (means, np.mean)):
        for k in range(2):
            pooled = pool(support[0][labels[0] == k], axis=0)
            for q in range(3):
                pair = np.concatenate([pooled, query[0, q]], -1)[None]
                np.testing.assert_allclose(got[0, q, k], learner.relation(pair).numpy()[0, 0],
                                           rtol=1e-4)
    assert not np.allclose(means, scores, atol=1e-3)
    loss, _ = learner.episode_loss(support, labels, query, np.array([[0, 1, 1]], np.int32), 2)
    targets = np.eye(2)[[0, 1, 1]]
    train_scores = learner.score(support, labels, query, 2, training=True).numpy()[0]
    np.testing.assert_allclose(float(loss[0]), ((train_scores - targets) ** 2).sum(-1).mean(),
                               rtol=1e-4)


def test_simplex_projection_matches_its_definition():
    from tfmeta.learners.svm import project_to_simplex

    rng = np.random.default_rng(6)
    v = rng.normal(size=(4, 5))
    u = project_to_simplex(tf.constant(v), 0.3).numpy()
    np.testing.assert_allclose(u.sum(-1), 0.3, rtol=1e-10)
    assert np.all(u >= 0)
    # Optimality of a Euclidean projection: <v - u, w - u> <= 0 for any w on the simplex.
    for _ in range(200):
        w = rng.dirichlet(np.ones(5), size=4) * 0.3
        assert np.all(((v - u) * (w - u)).sum(-1) <= 1e-10)


def test_svm_dual_solution_satisfies_kkt_conditions():
    from tfmeta.learners.svm import svm_dual

    rng = np.random.default_rng(7)
    x = rng.normal(size=(2, 9, 6))
    y = np.stack([rng.permutation(np.repeat(np.arange(3), 3)) for _ in range(2)])
    targets = np.eye(3)[y]
    kernel = np.einsum("tsd,trd->tsr", x, x)
    C = 0.5
    tau = svm_dual(tf.constant(kernel), tf.constant(targets), C, 3000).numpy()
    u = C * targets - tau
    # Feasibility: tau_i <= C e_{y_i} and sum_k tau_i[k] = 0.
    assert np.all(u >= -1e-9)
    np.testing.assert_allclose(tau.sum(-1), 0, atol=1e-8)
    # Stationarity on the simplex: the gradient in u is smallest, and equal, wherever u_i[k] > 0.
    gradient = targets - np.einsum("tij,tjk->tik", kernel, tau)
    gap = gradient - gradient.min(-1, keepdims=True)
    assert np.max(np.where(u > 1e-6, gap, 0)) < 1e-3


def test_svm_head_backpropagates_into_the_embedding():
    from tfmeta.learners import SVMConfig, SVMHead

    learner = SVMHead(_embedding(), SVMConfig(iterations=5), compiled=False)
    before = [v.numpy() for v in learner.meta_variables]
    learner.meta_train_step(_batch())
    assert all(not np.allclose(b, v.numpy()) for b, v in zip(before, learner.meta_variables))


def test_snail_is_causal_and_reads_the_support_labels():
    from tfmeta.learners import SNAIL, SNAILConfig
    from tfmeta.learners.snail import CausalAttention

    keras.utils.set_random_seed(7)
    layer = CausalAttention(8, 4)
    x = np.random.default_rng(8).normal(size=(2, 6, 5)).astype(np.float32)
    changed = x.copy()
    changed[:, 4:] += 1.0
    a, b = layer(x).numpy(), layer(changed).numpy()
    np.testing.assert_allclose(a[:, :4], b[:, :4], rtol=1e-5, atol=1e-6)  # the past ignores the future
    assert not np.allclose(a[:, 4:], b[:, 4:])
    learner = SNAIL(_embedding(), SNAILConfig(filters=8, keys=(8, 8, 8)),
                    episode=EpisodeConfig(3, 2, 2), compiled=False)
    support = tf.constant(np.random.default_rng(9).normal(size=(1, 6, 4)), tf.float32)
    query = support[:, :2]
    y = tf.constant([[0, 1, 2, 0, 1, 2]], tf.int32)
    swapped = tf.constant([[1, 0, 2, 1, 0, 2]], tf.int32)
    logits = learner.score(support, y, query, 3).numpy()
    assert logits.shape == (1, 2, 3)
    assert not np.allclose(logits, learner.score(support, swapped, query, 3).numpy())


def test_matching_full_context_embeddings_use_the_whole_support_set():
    from tfmeta.learners import MatchingConfig, MatchingNetwork

    learner = MatchingNetwork(_embedding(), MatchingConfig(fce=True, fce_steps=3), compiled=False)
    rng = np.random.default_rng(10)
    support = tf.constant(rng.normal(size=(2, 6, 4)), tf.float32)
    query = tf.constant(rng.normal(size=(2, 5, 4)), tf.float32)
    g, f = learner.context_embeddings(support, query)
    assert g.shape == (2, 6, 4) and f.shape == (2, 5, 4)
    changed = tf.concat([support[:, :5], support[:, 5:] + 1.0], 1)
    g2, f2 = learner.context_embeddings(changed, query)
    assert not np.allclose(g[:, 0].numpy(), g2[:, 0].numpy())  # x_1's embedding sees x_6
    assert not np.allclose(f.numpy(), f2.numpy())              # so do the queries
    p = np.exp(learner.score(support, tf.constant([[0, 1, 2] * 2] * 2), query, 3).numpy())
    np.testing.assert_allclose(p.sum(-1), 1, rtol=1e-5)
    fce = (learner.parts["fce_support"].trainable_variables
           + learner.parts["fce_query"].trainable_variables)
    assert len(fce) == 9  # two LSTMs and a cell: kernel, recurrent kernel, bias each
    before = [v.numpy() for v in fce]
    learner.meta_train_step(_batch())
    assert all(not np.allclose(b, v.numpy()) for b, v in zip(before, fce))


def _head_gradient_error(learner, ways=3, shots=2, queries=4, dim=6, seed=11):
    """Relative error of d(query loss)/d(support and query embeddings) through a head's
    ``score`` against central finite differences, in float64."""
    rng = np.random.default_rng(seed)
    support = rng.normal(size=(1, ways * shots, dim))
    query = rng.normal(size=(1, ways * queries, dim))
    sy = tf.constant(np.tile(np.arange(ways), (1, shots)), tf.int32)
    qy = tf.constant(np.tile(np.arange(ways), (1, queries)), tf.int32)

    compiled = tf.function(lambda s, q: cross_entropy(learner.score(s, sy, q, ways), qy))

    def loss(s, q):
        return float(compiled(tf.constant(s), tf.constant(q)))

    s, q = tf.constant(support), tf.constant(query)
    with tf.GradientTape() as tape:
        tape.watch([s, q])
        value = cross_entropy(learner.score(s, sy, q, ways), qy)
    analytic = np.concatenate([g.numpy().ravel() for g in tape.gradient(value, [s, q])])
    eps, numeric = 1e-6, []
    for array, other, first in ((support, query, True), (query, support, False)):
        for i in range(array.size):
            plus, minus = array.copy(), array.copy()
            plus.flat[i] += eps
            minus.flat[i] -= eps
            pair = ((plus, other), (minus, other)) if first else ((other, plus), (other, minus))
            numeric.append((loss(*pair[0]) - loss(*pair[1])) / (2 * eps))
    numeric = np.array(numeric)
    return np.linalg.norm(analytic - numeric) / np.linalg.norm(numeric)


def _float64_embedding():
    keras.utils.set_random_seed(5)
    inputs = keras.Input((5,), dtype="float64")
    return keras.Model(inputs, keras.layers.Dense(4, dtype="float64")(inputs))


def test_ridge_and_svm_backward_passes_match_finite_differences():
    from tfmeta.learners import RidgeConfig, RidgeHead, SVMConfig, SVMHead

    for config in (RidgeConfig(), RidgeConfig(l2=0.5), RidgeConfig(learn_l2=True)):
        learner = RidgeHead(_float64_embedding(), config, compiled=False)
        learner.calibration.scale = tf.Variable(2.0, dtype=tf.float64)
        if config.learn_l2:
            learner.calibration.log_l2 = tf.Variable(np.log(config.l2), dtype=tf.float64)
        assert _head_gradient_error(learner) < 1e-6
    # The SVM solver unrolled for a fixed count (tolerance 0): a smooth function of its inputs.
    learner = SVMHead(_float64_embedding(), SVMConfig(C=0.5, iterations=300, tolerance=0.0),
                      compiled=False)
    learner.calibration.scale = tf.Variable(3.0, dtype=tf.float64)
    assert _head_gradient_error(learner) < 1e-5


def test_svm_at_its_production_settings_is_within_the_stated_duality_gap():
    """MetaOptNet's C = 0.1 and tfmeta's default tolerance, on embeddings of the scale Conv4 gives
    (64 features after ReLU): the stated relative gap holds in 1- and 5-shot."""
    from tfmeta.learners import SVMConfig
    from tfmeta.learners.svm import duality_gap, svm_dual

    config = SVMConfig()
    rng = np.random.default_rng(12)
    for shots in (1, 5):
        x = np.maximum(rng.normal(size=(4, 5 * shots, 64)) + rng.normal(size=(4, 1, 64)), 0)
        y = np.tile(np.arange(5), (4, shots))
        kernel, targets = tf.constant(np.einsum("tsd,trd->tsr", x, x)), tf.constant(np.eye(5)[y])
        tau = svm_dual(kernel, targets, config.C, config.iterations, config.tolerance)
        gap, primal = duality_gap(kernel, targets, tau, config.C)
        assert np.all(gap.numpy() <= config.tolerance * primal.numpy() + 1e-12), gap.numpy()
        assert np.all(gap.numpy() >= -1e-9)  # weak duality: the gap of a feasible point
        u = config.C * targets.numpy() - tau.numpy()
        assert np.all(u >= -1e-9) and np.allclose(tau.numpy().sum(-1), 0, atol=1e-8)
        # 15 iterations (today's former training setting) is far from converged.
        rough = svm_dual(kernel, targets, config.C, 15)
        assert np.max((duality_gap(kernel, targets, rough, config.C)[0] / primal).numpy()) > 0.01


def test_label_smoothing_of_the_calibrated_heads_matches_its_formula():
    from tfmeta.learners import RidgeConfig, RidgeHead

    learner = RidgeHead(_embedding(), RidgeConfig(), compiled=False, label_smoothing=0.1)
    rng = np.random.default_rng(13)
    support = tf.constant(rng.normal(size=(1, 6, 4)), tf.float32)
    query = tf.constant(rng.normal(size=(1, 3, 4)), tf.float32)
    sy, qy = tf.constant([[0, 1, 2] * 2]), tf.constant([[2, 0, 1]])
    loss, logits = learner.episode_loss(support, sy, query, qy, 3)
    p = tf.nn.log_softmax(logits).numpy()[0]
    targets = np.eye(3)[[2, 0, 1]] * 0.9 + 0.1 / 3
    np.testing.assert_allclose(float(loss[0]), -(targets * p).sum(-1).mean(), rtol=1e-5)
    plain, _ = RidgeHead(_embedding(), RidgeConfig(), compiled=False).episode_loss(
        support, sy, query, qy, 3)
    assert not np.isclose(float(loss[0]), float(plain[0]))


def test_svm_solution_of_a_task_does_not_depend_on_the_tasks_beside_it():
    """Each task stops at its own tolerance: solved in a batch or alone, the same solution (before,
    the batch ran until every task converged, so an episode's answer depended on its neighbours,
    and a meta-batch split over replicas gave other test accuracies: 9e-4 apart here)."""
    from tfmeta.learners.svm import svm_dual

    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 5, 8))
    x[1] *= 10  # tasks of different difficulty
    kernel = tf.constant(np.einsum("tsd,trd->tsr", x, x), tf.float32)
    targets = tf.one_hot(np.tile(np.arange(5), (4, 1)), 5)
    together = svm_dual(kernel, targets, 0.1, 1000, 1e-3).numpy()
    alone = np.concatenate([svm_dual(kernel[i:i + 1], targets[i:i + 1], 0.1, 1000, 1e-3).numpy()
                            for i in range(4)])
    np.testing.assert_array_equal(together, alone)


def test_a_meta_variable_the_loss_does_not_reach_gets_a_zero_gradient():
    """A learner part (or a head a learner replaces per task, as Proto-MAML's) that no loss
    reaches takes a zero meta-gradient and the step goes on; it raised "'str' object has no
    attribute '_type_enum'" (TensorFlow's UnconnectedGradients.ZERO on a Keras variable)."""
    from tfmeta.models import build_model

    class WithUnusedPart(ProtoNet):
        def build_parts(self):
            unused = keras.layers.Dense(2, name="unused")
            unused.build((None, 3))
            return {"unused": unused}

    episode = EpisodeConfig(3, 1, 2)
    learner = WithUnusedPart(build_model("conv4", (28, 28, 1), width=4), ProtoNetConfig(),
                             episode=episode, compiled=False)
    rng = np.random.default_rng(0)
    batch = (rng.random((1, 3, 28, 28, 1), np.float32), np.arange(3)[None].astype(np.int32),
             rng.random((1, 6, 28, 28, 1), np.float32),
             np.repeat(np.arange(3), 2)[None].astype(np.int32))
    unused = learner.parts["unused"].kernel.numpy().copy()
    gradients = learner.outer_gradients(*batch)[0]
    assert not np.any(np.asarray(gradients[-1])) and not np.any(np.asarray(gradients[-2]))
    assert np.any(np.asarray(gradients[0]))  # the model's weights do learn
    assert float(learner.meta_train_step(batch)["skipped"]) == 0
    np.testing.assert_array_equal(learner.parts["unused"].kernel.numpy(), unused)


def _soft_kmeans(support, labels, query, ways, steps):
    """Ren et al. 2018's soft k-means refinement, in numpy, for one task."""
    one_hot = np.eye(ways)[labels]
    centres = one_hot.T @ support / one_hot.sum(0)[:, None]
    for _ in range(steps):
        logits = -((query[:, None] - centres[None]) ** 2).sum(-1)
        w = np.exp(logits - logits.max(-1, keepdims=True))
        w /= w.sum(-1, keepdims=True)
        centres = (one_hot.T @ support + w.T @ query) / (one_hot.sum(0) + w.sum(0))[:, None]
    return -((query[:, None] - centres[None]) ** 2).sum(-1)


def test_protonet_transductive_refinement_matches_numpy_and_helps():
    """Prototypes refined with the queries (soft k-means): the metrics and transductive_logits
    against numpy, on an identity embedding where each support image sits off its class's
    centre, towards another class, so plain prototypes misclassify queries the refined ones
    recover."""
    inputs = keras.Input((2,))
    identity = keras.Model(inputs, keras.layers.Dense(2, kernel_initializer="identity")(inputs))
    learner = ProtoNet(identity, ProtoNetConfig(refine_steps=3), compiled=False)
    rng = np.random.default_rng(5)
    centres = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    support = centres + np.array([[1.3, 1.3], [-1.4, 0.0], [0.0, -1.3]])  # pulled inwards
    labels = np.arange(3)
    query_y = np.repeat(np.arange(3), 10)
    query = centres[query_y] + rng.normal(scale=0.6, size=(30, 2))
    batch = tuple(tf.constant(a[None], dtype) for a, dtype in (
        (support, tf.float32), (labels, tf.int32), (query, tf.float32), (query_y, tf.int32)))
    metrics = learner.meta_test_step(batch)
    expected = _soft_kmeans(support, labels, query, 3, 3)
    plain = _soft_kmeans(support, labels, query, 3, 0)
    np.testing.assert_allclose(float(metrics["accuracy"][0]), (plain.argmax(-1) == query_y).mean())
    np.testing.assert_allclose(float(metrics["transductive_accuracy"][0]),
                               (expected.argmax(-1) == query_y).mean())
    assert (expected.argmax(-1) == query_y).mean() > (plain.argmax(-1) == query_y).mean() + 0.2
    np.testing.assert_allclose(learner.transductive_logits(support, labels, query).numpy(),
                               expected, rtol=1e-4, atol=1e-4)
    assert "transductive_accuracy" not in ProtoNet(identity, ProtoNetConfig(refine_steps=0),
                                                   compiled=False).meta_test_step(batch)
