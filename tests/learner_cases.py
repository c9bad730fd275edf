"""One row per registered learner: what every per-learner test needs to know about it.

Per-learner tests take their options and expectations from here (``smoke_options`` for tiny
models and episodes, ``CASES[name].gain`` for tests/test_learning.py, the recorded-loss key in
tests/recorded_losses.json), so a new learner is tested everywhere by adding its row;
tests/test_learner_cases.py fails while a registered learner has none.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Case:
    """Attributes:
        smoke: options for the tests' tiny models (Conv4 of width 4-8) beside the episode's own
            (``smoke_options``).
        gain: the least accuracy a 300-step meta-training must add on 50 glyph test episodes
            (tests/test_learning.py); ``None``: its learning is tested elsewhere (why in ``note``).
        floor: the least accuracy it must reach there.
        learning: options for that test's budget.
        recorded: whether tests/recorded_losses.json holds its losses (tests/test_same_losses.py).
        slow: its learning test takes over 40 s on 2 cores: marked ``slow``, left out of the
            default run (CI's 30 minutes) and run by ``pytest -m slow``.
        xla_rtol: relative tolerance of its meta-training losses with XLA against without
            (tests/test_xla.py; float32 rounding in another order, which Adam's first step turns
            into full-size steps where a gradient is zero up to rounding).
        note: why a row differs from the others.
    """

    smoke: dict = dataclasses.field(default_factory=dict)
    gain: float | None = 0.10
    floor: float = 0.60
    learning: dict = dataclasses.field(default_factory=dict)
    recorded: bool = True
    slow: bool = False
    xla_rtol: float = 1e-4
    note: str = ""


BATCHES = "trains on class minibatches: tests/test_baselines.py tests its learning"

CASES = {
    "maml": Case(),  # its defaults: the mean-loss inner step (0.494 -> 0.716 measured)
    "fomaml": Case(gain=None, note="MAML's code with first_order fixed: MAML's learning test "
                                   "and tests/test_maml_math.py cover it (CI budget)"),
    "anil": Case(slow=True),
    "maml++": Case(smoke={"inner_steps": 2, "test_inner_steps": 2}, slow=True,
                   learning={"inner_steps": 2, "test_inner_steps": 2},
                   note="two inner steps in the tests (CI budget; the paper's five in the "
                        "omniglot_small_mamlpp preset)"),
    "protomaml": Case(slow=True),
    "metasgd": Case(slow=True),
    # The paper's settings; its annealed interpolation with the inner Adam at lr 0.001 gains
    # slowly (measured 0.48 -> 0.60-0.62), and an untrained Conv4 fine-tuned for its 50 test
    # steps already scores well on glyphs.
    "reptile": Case(gain=0.025, floor=0.55, slow=True),
    "protonet": Case(),
    "matching": Case(slow=True, note="--fce: tests/test_learners_math.py (CI budget)"),
    "relation": Case(slow=True),
    "siamese": Case(),
    "ridge": Case(),
    "svm": Case(slow=True),
    # SNAIL meta-trains on shuffled support sequences: it must learn to read labels, not
    # positions (measured 0.20 -> 0.56).
    # The fine-tuning baselines train on minibatches of every training class, not episodes: their
    # learning test (tests/test_baselines.py) feeds them those; here they meet episodes' labels.
    "baseline": Case(smoke={"classes": 10}, gain=None, note=BATCHES),
    "baseline++": Case(smoke={"classes": 10}, gain=None, note=BATCHES),
    "rfs": Case(smoke={"classes": 10}, gain=None, note=BATCHES),
    "snail": Case(smoke={"filters": 8, "keys": (8, 8, 8)}, floor=0.50, slow=True,
                  learning={"filters": 32, "keys": (32, 64, 64)}),
}


def episode_options(name: str, episode) -> dict:
    """What an episode requires of a learner's options: Reptile trains on ``train_shots`` images
    per class (10 by default), so tiny episodes give it their shots + queries."""
    if name == "reptile":
        return {"train_shots": min(10, episode.shots + episode.queries)}
    return {}


def smoke_options(name: str, episode) -> dict:
    """Options for a tiny test model of learner ``name`` on ``episode``."""
    return {**CASES[name].smoke, **episode_options(name, episode)}


def learning_options(name: str, episode) -> dict:
    """Options for tests/test_learning.py's budget on ``episode``."""
    return {**CASES[name].learning, **episode_options(name, episode)}
