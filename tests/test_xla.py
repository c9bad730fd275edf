"""``--xla`` (``jit_compile``): the learners XLA compiles give the same meta-training losses and
test-step figures as without it (float32 tolerance); the others are refused in one line before a
run directory is written."""

import keras
import numpy as np
import pytest

from tfmeta.cli import main
from tfmeta.data import EpisodeConfig, EpisodeSampler
from tfmeta.errors import ConfigError
from tfmeta.learners import ALGORITHMS, create

from learner_cases import CASES, smoke_options

EPISODE = EpisodeConfig(3, 2, 2)
COMPILED = sorted(name for name, (cls, _) in ALGORITHMS.items() if not cls.xla_unsupported)


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


def test_the_learners_xla_compiles_are_the_maml_family_and_snail():
    from tfmeta.learners import MAML, SNAIL, MetaSGD

    family = sorted(name for name, (cls, _) in ALGORITHMS.items()
                    if issubclass(cls, (MAML, MetaSGD, SNAIL)))
    assert COMPILED == family and {"anil", "fomaml", "maml", "metasgd", "snail"} <= set(family)


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
        with pytest.raises(ConfigError, match=f"XLA cannot compile {algorithm}'s meta-steps: "
                                              ".*; run it without --xla") as err:
            create(algorithm, "conv4", episode=EPISODE, input_shape=(16, 16, 1),
                   backbone_width=4, jit_compile=True, **smoke_options(algorithm, EPISODE))
        assert "\n" not in str(err.value)
    out = tmp_path / "run"
    assert main(["train", "--algorithm", "protonet", "--dataset", "glyphs", "--xla", "--steps",
                 "1", "--out", str(out), "--no-progress"]) == 2
    assert "XLA cannot compile protonet's meta-steps" in capsys.readouterr().err
    assert not (out / "run.json").exists()
