"""``--xla`` (``jit_compile``): the learners XLA compiles give the same meta-gradients,
meta-training losses and test-step figures as without it (float32 tolerance); the others are
refused in one line before a run directory is written -- second-order learners on a model with
BatchNorm among them, whose meta-gradient XLA computes a few percent off the exact one."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmeta.cli import main
from tfmeta.data import EpisodeConfig, EpisodeSampler
from tfmeta.errors import ConfigError
from tfmeta.learners import ALGORITHMS, create

from learner_cases import CASES, smoke_options

EPISODE = EpisodeConfig(3, 2, 2)
FAMILY = sorted(name for name, (cls, _) in ALGORITHMS.items() if not cls.xla_unsupported)


def _compiles(algorithm) -> bool:
    try:
        create(algorithm, "conv4", episode=EPISODE, input_shape=(16, 16, 1), backbone_width=4,
               jit_compile=True, **smoke_options(algorithm, EPISODE))
    except ConfigError:
        return False
    return True


COMPILED = [name for name in FAMILY if _compiles(name)]


@pytest.fixture(scope="module")
def batch(small_glyphs):
    sampler = EpisodeSampler(small_glyphs, EPISODE, meta_batch=2, seed=4)
    return [t.numpy() for t in next(iter(sampler.dataset()))]


def _figures(algorithm, batch, jit_compile):
    keras.utils.set_random_seed(0)
    learner = create(algorithm, "conv4", episode=EPISODE, input_shape=batch[0].shape[2:],
                     backbone_width=4, jit_compile=jit_compile,
                     compiled=jit_compile)  # the reference runs eagerly: no tracing to wait for
    test = learner.meta_test_step(batch)  # before training: the same weights
    losses = [float(learner.meta_train_step(batch)["loss"]) for _ in range(2)]
    return losses, {k: np.asarray(v) for k, v in test.items()}


def test_the_learners_xla_compiles_are_the_first_order_maml_family_and_snail():
    from tfmeta.learners import MAML, SNAIL, MetaSGD

    family = sorted(name for name, (cls, _) in ALGORITHMS.items()
                    if issubclass(cls, (MAML, MetaSGD, SNAIL)))
    assert FAMILY == family and {"anil", "fomaml", "maml", "metasgd", "snail"} <= set(family)
    # second order through BatchNorm is refused (below); first-order MAML and SNAIL compile
    assert COMPILED == ["fomaml", "snail"]


@pytest.mark.xfail(strict=True, reason="XLA's second-order meta-gradient through BatchNorm is a "
                                       "few percent off: why --xla refuses it (a pass here means "
                                       "TensorFlow fixed it: lift the refusal)")
def test_xla_second_order_meta_gradient_through_batchnorm_is_exact(batch):
    from tfmeta.learners import MAML

    keras.utils.set_random_seed(0)
    learner = create("maml", "conv4", episode=EPISODE, input_shape=batch[0].shape[2:],
                     backbone_width=8, compiled=False)
    exact = np.concatenate([g.numpy().ravel() for g in learner.meta_gradients(*batch)[0]])
    compiled = tf.function(lambda *b: MAML.meta_gradients(learner, *b)[0], jit_compile=True)
    xla = np.concatenate([g.numpy().ravel() for g in compiled(*batch)])
    assert np.linalg.norm(xla - exact) / np.linalg.norm(exact) < 1e-3  # measured: 3e-2


@pytest.mark.parametrize("algorithm", [name for name in COMPILED if name != "snail"])
def test_xla_gives_the_same_meta_gradients(algorithm, batch):
    """The meta-gradient itself (the losses after an Adam step barely show an error in it)."""
    keras.utils.set_random_seed(0)
    learner = create(algorithm, "conv4", episode=EPISODE, input_shape=batch[0].shape[2:],
                     backbone_width=8, compiled=False, **smoke_options(algorithm, EPISODE))
    exact = np.concatenate([g.numpy().ravel() for g in learner.outer_gradients(*batch)[0]])
    compiled = tf.function(lambda *b: learner.outer_gradients(*b)[0], jit_compile=True)
    xla = np.concatenate([g.numpy().ravel() for g in compiled(*batch)])
    assert np.linalg.norm(xla - exact) / np.linalg.norm(exact) < 1e-3  # (SNAIL: its shuffle's
    # stateless RNG draws other orders under XLA; the losses test below covers it)


@pytest.mark.parametrize("algorithm", COMPILED)
def test_xla_gives_the_same_losses(algorithm, batch):
    plain, xla = _figures(algorithm, batch, False), _figures(algorithm, batch, True)
    for name, value in plain[1].items():
        np.testing.assert_allclose(xla[1][name], value, rtol=1e-4, atol=1e-5, err_msg=name)
    if algorithm == "snail":
        # Its support order is drawn by a stateless RNG, whose numbers XLA's kernel does not
        # repeat: the meta-training losses are of other (equally random) orders.
        assert all(np.isfinite(xla[0]))
    else:
        np.testing.assert_allclose(xla[0], plain[0], rtol=CASES[algorithm].xla_rtol)


def test_learners_xla_cannot_compile_are_one_line_before_anything_is_written(tmp_path, capsys):
    for algorithm in sorted(set(ALGORITHMS) - set(COMPILED)):
        with pytest.raises(ConfigError, match=f"XLA cannot compile {re.escape(algorithm)}'s "
                                              "meta-steps: "
                                              ".*; run it without --xla") as err:
            create(algorithm, "conv4", episode=EPISODE, input_shape=(16, 16, 1),
                   backbone_width=4, jit_compile=True, **smoke_options(algorithm, EPISODE))
        assert "\n" not in str(err.value)
    out = tmp_path / "run"
    assert main(["train", "--algorithm", "protonet", "--dataset", "glyphs", "--xla", "--steps",
                 "1", "--out", str(out), "--no-progress"]) == 2
    assert "XLA cannot compile protonet's meta-steps" in capsys.readouterr().err
    assert not (out / "run.json").exists()
