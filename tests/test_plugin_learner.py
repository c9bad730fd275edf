"""Adding a learner is one file: a learner defined here, registered, then meta-trained, evaluated,
adapted and exported through the CLI with no other file of tfmeta touched."""

import dataclasses
import json
import os

import numpy as np
import tensorflow as tf
from PIL import Image

from tfmeta.data import generate_glyphs
from tfmeta.learners import ALGORITHMS, MetricLearner, register
from tfmeta.learners.protonet import prototypes


@dataclasses.dataclass
class L1PrototypesConfig:
    """Attributes:
        temperature: divides the negative L1 distances to the class means."""

    temperature: float = 1.0


class L1Prototypes(MetricLearner):
    """Prototypes compared by L1 distance: the whole of a metric learner."""

    name = "l1protos"
    config_class = L1PrototypesConfig

    def score(self, support, support_y, query, ways, training=False):
        centres = prototypes(support, support_y, ways)
        distances = tf.reduce_sum(tf.abs(query[:, :, None] - centres[:, None]), -1)
        return -distances / self.config.temperature


def test_an_option_named_like_an_argument_of_create_is_refused_at_registration():
    import pytest

    from tfmeta.errors import ConfigError

    @dataclasses.dataclass
    class Clashing:
        backbone_width: int = 3

    class Bad(L1Prototypes):
        name = "bad"
        config_class = Clashing

    with pytest.raises(ConfigError, match="options may not be named backbone_width"):
        register(Bad)
    assert "bad" not in ALGORITHMS


def _folders(root, names, per_class, seed):
    source = generate_glyphs(num_classes=len(names), samples_per_class=per_class, seed=seed)
    for c, name in enumerate(names):
        os.makedirs(root / name, exist_ok=True)
        for i, image in enumerate(source.class_images(c)):
            Image.fromarray(image[..., 0]).save(root / name / f"{i}.png")


def test_a_learner_registered_in_a_test_trains_evaluates_adapts_and_exports(tmp_path, capsys):
    from tfmeta.cli import main

    register(L1Prototypes)
    try:
        out = str(tmp_path / "run")
        assert main(["train", "--algorithm", "l1protos", "--set", "learner.temperature=2.0",
                     "--steps", "4", "--meta-batch", "2", "--ways", "3", "--queries", "2",
                     "--width", "8", "--episodes", "6", "--val-every", "2", "--val-episodes",
                     "2", "--no-progress", "--out", out]) == 0
        assert "3-way 1-shot accuracy" in capsys.readouterr().out
        run = json.loads(open(os.path.join(out, "run.json")).read())
        assert run["algorithm"] == "l1protos" and run["learner"] == {"temperature": 2.0}
        assert main(["evaluate", "--checkpoint", out, "--episodes", "4"]) == 0
        assert main(["train", "--algorithm", "l1protos", "--set", "learner.temprature=2",
                     "--out", str(tmp_path / "typo")]) == 2
        assert "l1protos has no option temprature; its options: temperature" in (
            capsys.readouterr().err)

        _folders(tmp_path / "support", ["a", "b", "c"], 2, seed=11)
        exports = str(tmp_path / "savedmodels")
        assert main(["adapt", "--checkpoint", out, "--support", str(tmp_path / "support"),
                     "--name", "mine", "--export-dir", exports]) == 0
        assert main(["export-fewshot", "--checkpoint", out, "--name", "mine-fewshot",
                     "--export-dir", exports]) == 0
        for name in ("mine", "mine-fewshot"):
            facts = json.loads(open(os.path.join(exports, name, "1", "assets.extra",
                                                 "tfmeta.json")).read())
            assert facts["algorithm"] == "l1protos", facts

        # The served classifier answers as the learner does.
        import tfmeta

        learner = tfmeta.load(out)
        assert isinstance(learner, L1Prototypes) and learner.config.temperature == 2.0
        images = np.stack([np.array(Image.open(tmp_path / "support" / c / f"{i}.png"))[..., None]
                           for c in "abc" for i in range(2)])
        served = tf.saved_model.load(os.path.join(exports, "mine", "1"))
        answers = served.signatures["serving_default"](
            images=tf.constant(images, tf.float32) / 255.0)
        expected = learner.predict(images, np.repeat(list("abc"), 2), images)
        np.testing.assert_array_equal(np.array(list("abc"))[answers["class_ids"].numpy()],
                                      expected)
    finally:
        ALGORITHMS.pop("l1protos", None)
