"""Ensembles of trained runs: the members' answers averaged as probabilities (Dietterich 2000; for
few-shot learning, Dvornik, Schmid & Mairal, ICCV 2019, "Diversity with Cooperation")::

    p(y | q; S) = mean over members m of softmax(logits_m(q; S))       # each adapted to S
    logits = log p                                                     # what the ensemble answers

Any learners may be members (a ProtoNet beside a Relation Network, say) if they take the same
images (height, width, channels). ``tfmeta ensemble RUN1 RUN2 ... --out RUN`` writes a run
directory that :func:`tfmeta.run.load` reads back as an :class:`Ensemble`, so ``tfmeta evaluate``,
``predict``, ``adapt`` and ``export-fewshot`` take it as they take one run: ``ensemble.json``
(the members, relative to the ensemble's directory) and ``run.json`` (the first member's config:
the data and episodes an evaluation uses).
"""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf

from tfmeta.data.images import other_polarity
from tfmeta.errors import ConfigError
from tfmeta.files import write_json
from tfmeta.learners.answers import Answers
from tfmeta.learners.losses import accuracy, cross_entropy
from tfmeta.learners.tta import MeanProbability, mean_probability_logits

ENSEMBLE_FILE = "ensemble.json"


class Ensemble(Answers):
    """Learners answering together: the mean of their probabilities."""

    def __init__(self, members: list, names: list | None = None):
        if len(members) < 2:
            raise ConfigError(f"an ensemble needs at least 2 members, got {len(members)}")
        shapes = {tuple(m.input_shape) for m in members}
        if len(shapes) > 1:
            raise ConfigError(f"the members take different images ({', '.join(map(str, shapes))}):"
                              " an ensemble's members must share height, width and channels")
        self.members = list(members)
        self.name = "ensemble(" + "+".join(names or [m.name for m in members]) + ")"
        self.compiled = all(m.compiled for m in members)
        self.polarity = None  # each member brings images to its own (fewshot_logits)
        self.strategy = None
        self.model = tf.Module(name="members")  # tracks the members' weights for SavedModels
        self.model.members = [m.model for m in members]
        self.parts = {f"member{i}_{name}": part for i, m in enumerate(members)
                      for name, part in m.parts.items()}
        self._test_fn = None
        self.member_dirs = None  # the members' run directories, when read from one

    @property
    def input_shape(self) -> tuple:
        return tuple(self.members[0].input_shape)

    @property
    def max_ways(self) -> int | None:
        limits = [m.max_ways for m in self.members if m.max_ways is not None]
        return min(limits) if limits else None

    def check_ways(self, labels) -> None:
        for member in self.members:
            member.check_ways(labels)

    def _member_logits(self, member, support_x, support_y, query_x):
        if member.polarity is not None:  # the member's training polarity, as its adapt() does
            other = other_polarity(support_x, member.polarity)
            support_x = tf.where(other, 1.0 - support_x, support_x)
            query_x = tf.where(other, 1.0 - query_x, query_x)
        return member.fewshot_logits(support_x, support_y, query_x)

    def _fewshot_logits(self, support_x, support_y, query_x):
        logits = [self._member_logits(m, support_x, support_y, query_x) for m in self.members]
        return mean_probability_logits(tf.stack([tf.cast(x, tf.float32) for x in logits], 0))

    def meta_test_step(self, batch) -> dict:
        """Per-episode query ``{"loss", "accuracy", "logits"}`` of a meta-batch, as the adapted
        ensemble answers (before the ensemble's own temperature)."""
        self.check_ways(batch[1])
        if self._test_fn is None:
            def episodes(support_x, support_y, query_x, query_y):
                accuracies, losses, answers = [], [], []
                for i in range(support_x.shape[0]):
                    logits = self._fewshot_logits(support_x[i], support_y[i], query_x[i])
                    accuracies.append(accuracy(logits, query_y[i]))
                    losses.append(cross_entropy(logits, query_y[i]))
                    answers.append(logits)
                return {"accuracy": tf.stack(accuracies), "loss": tf.stack(losses),
                        "logits": tf.stack(answers)}

            self._test_fn = tf.function(episodes) if self.compiled else episodes
        return self._test_fn(*batch)

    def adapt(self, support_x, support_y, tta=None, finetune=None) -> keras.Model:
        """One Keras classifier: every member adapted to the support set (with ``tta`` /
        ``finetune`` as each member takes them), their probabilities averaged (logits
        ``log(mean p)``)."""
        classifiers = [m.adapt(support_x, support_y, tta=tta, finetune=finetune)
                       for m in self.members]
        classes = int(tf.reduce_max(tf.convert_to_tensor(support_y))) + 1
        inputs = keras.Input(self.input_shape, name="images")
        logits = [classifier(inputs) for classifier in classifiers]
        return self.calibrated_classifier(keras.Model(
            inputs, MeanProbability(classes, name="mean_probability")(logits),
            name="ensemble_classifier"), support_y)

    def embedding_model(self, images=None):
        raise ConfigError("an ensemble has no one embedding: export a member's "
                          "(tfmeta export --checkpoint MEMBER_RUN)")


def write_ensemble(member_dirs: list, out_dir: str) -> dict:
    """Write the ensemble run directory ``out_dir`` of the runs ``member_dirs`` (checked: each a
    run, 2 or more, the same images). Returns what ``ensemble.json`` holds."""
    from tfmeta.rundir import RUN_FILE, load_config

    if len(member_dirs) < 2:
        raise ConfigError(f"an ensemble needs at least 2 runs, got {len(member_dirs)}")
    configs = [load_config(d) for d in member_dirs]  # not a run: one clear error
    shapes = {(c.data.image_size, c.data.image_size, c.data.channels) for c in configs}
    if len(shapes) > 1:
        raise ConfigError(f"the runs take different images ({', '.join(map(str, shapes))}): "
                          "an ensemble's members must share image size and channels")
    if os.path.exists(os.path.join(out_dir, RUN_FILE)):
        raise ConfigError(f"{out_dir} already holds a run: use a new --out")
    os.makedirs(out_dir, exist_ok=True)
    facts = {"members": [os.path.relpath(os.path.abspath(d), os.path.abspath(out_dir))
                         for d in member_dirs],
             "algorithms": [c.algorithm for c in configs], "format": 1}
    write_json(facts, os.path.join(out_dir, ENSEMBLE_FILE))
    write_json(configs[0].to_dict(), os.path.join(out_dir, RUN_FILE))
    return facts


def is_ensemble(out_dir: str) -> bool:
    return os.path.isfile(os.path.join(out_dir, ENSEMBLE_FILE))


def load_ensemble(out_dir: str, load) -> Ensemble:
    """The :class:`Ensemble` of an ensemble run directory, each member read by ``load``
    (:func:`tfmeta.run.load`)."""
    with open(os.path.join(out_dir, ENSEMBLE_FILE)) as f:
        facts = json.load(f)
    members = [os.path.normpath(os.path.join(out_dir, d)) for d in facts["members"]]
    missing = [d for d in members if not os.path.isdir(d)]
    if missing:
        raise ConfigError(f"{out_dir}: member run {missing[0]} not found (an ensemble keeps "
                          "its members' paths relative to its own directory)")
    ensemble = Ensemble([load(d) for d in members], facts.get("algorithms"))
    ensemble.member_dirs = members
    return ensemble
