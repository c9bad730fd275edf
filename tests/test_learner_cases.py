"""Every registered learner has a row in tests/learner_cases.py, so no per-learner test skips it."""

import json
import os

from learner_cases import CASES

from tfmeta.learners import ALGORITHMS


def test_every_registered_learner_has_a_row():
    missing = sorted(set(ALGORITHMS) - set(CASES))
    assert not missing, f"add a row to tests/learner_cases.py for: {', '.join(missing)}"
    assert not set(CASES) - set(ALGORITHMS), "a row of tests/learner_cases.py names no learner"


def test_every_row_that_says_so_has_recorded_losses():
    with open(os.path.join(os.path.dirname(__file__), "recorded_losses.json")) as f:
        recorded = set(json.load(f))
    assert {name for name, case in CASES.items() if case.recorded} == recorded
    for name, case in CASES.items():
        assert case.gain is not None or case.note, f"{name}: say where its learning is tested"
