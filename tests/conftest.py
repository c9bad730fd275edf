import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Start TensorFlow's runtime now, with its default threads: a run.train() in the test process then
# leaves them alone (tfmeta.threads can only set them before the start), whatever test comes
# first. Command-line runs in fresh processes set them as they do for users.
import tensorflow as tf  # noqa: E402

tf.constant(0)

SHARED_OMNIGLOT = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "omniglot")


@pytest.fixture(scope="session", autouse=True)
def glyph_cache(tmp_path_factory):
    """One glyphs cache for the whole session (CLI subprocesses inherit it)."""
    path = str(tmp_path_factory.mktemp("tfmeta-cache"))
    os.environ["TFMETA_CACHE_DIR"] = path
    return path


@pytest.fixture(scope="session")
def small_glyphs():
    from tfmeta.data import generate_glyphs

    return generate_glyphs(num_classes=80, samples_per_class=20, image_size=28, seed=3)


@pytest.fixture()
def seeded():
    import keras

    keras.utils.set_random_seed(0)
    np.random.seed(0)


# Long cases whose code other cases of the same test cover (left out of the default run, CI's
# 30 minutes; ``pytest -m slow`` runs them): SNAIL and the second MAML family members where MAML or
# ProtoNet run the same path.
SLOW = {
    "tests/test_xla.py::test_xla_gives_the_same_losses[snail]",
    "tests/test_run.py::test_sigkilled_cli_run_resumes_to_the_uninterrupted_state[snail]",
    "tests/test_run.py::test_resume_is_exact[metasgd]",
    "tests/test_run.py::test_resume_is_exact[reptile]",
    "tests/test_precision.py::test_every_learner_meta_trains_under_bfloat16[snail]",
    "tests/test_every_learner.py::test_learner_with_resnet12_adapts_and_predicts_consistently[maml++]",
    "tests/test_run.py::test_cli_train_and_evaluate_every_algorithm[maml++]",
}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid in SLOW:
            item.add_marker(pytest.mark.slow)
