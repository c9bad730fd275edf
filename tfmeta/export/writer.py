"""Writing exports: stage, verify (here and in a fresh process), publish a version folder.
See :mod:`tfmeta.export` for the layout and the Python API."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import tensorflow as tf

from tfmeta.export import check as checks
from tfmeta.errors import ExportError
from tfmeta.export.convert import CONVERTERS, FILES, first_line, require
from tfmeta.export.layout import check_name, publish
from tfmeta.export.servables import ClassifierServable, EmbeddingServable, FewShotServable
from tfmeta.export.warmup import WARMUP_FILE, write_warmup
from tfmeta.files import write_json
from tfmeta.learners.answers import unknown_scores
from tfmeta.progress import stage

FORMATS = tuple(FILES)
METADATA_FILE = os.path.join("assets.extra", "tfmeta.json")
EMBEDDING_FILE = "embedding.keras"
WARMUP_IMAGES = 4  # images in the warm-up request of a classifier or embedding export

def _formats(formats) -> list:
    formats = [formats] if isinstance(formats, str) else list(formats or ())
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ValueError(f"unknown export format {unknown[0]!r}: use {', '.join(FORMATS)}")
    for fmt in formats:
        require(fmt)
    return [f for f in FORMATS if f in formats]


def _probabilities(logits) -> np.ndarray:
    return tf.nn.softmax(tf.cast(logits, tf.float32)).numpy()


def _expected(logits) -> dict:
    """The Keras model's outputs every exported file must reproduce."""
    return {"probabilities": _probabilities(logits),
            "unknown_score": unknown_scores(logits).numpy()}


def saved_model(classifier, class_names, images, export_dir: str = "savedmodels",
                name: str = "model", formats=(), metadata: dict | None = None,
                fresh_process: bool = True, unknown_threshold: float | None = None) -> str:
    """Export an adapted classifier (from ``learner.adapt``) as the next version of ``name``.

    Args:
        classifier: Keras model mapping preprocessed images to logits; its first
            ``len(class_names)`` outputs are the classes.
        class_names: the name of each class id.
        images: preprocessed images (float32 ``[n, H, W, C]`` in ``[0, 1]``; the support set)
            every exported format is verified on.
        formats: any of ``"onnx"``, ``"tflite"``, written and verified with the SavedModel.
        metadata: extra JSON-able facts for ``assets.extra/tfmeta.json``.
        fresh_process: also verify in a fresh Python process that does not import tfmeta.
        unknown_threshold: the unknown score above which ``is_unknown`` is true (a run's,
            ``learner.unknown_threshold``; ``None``: never).

    Returns the version folder, e.g. ``savedmodels/name/3``.
    """
    formats = _formats(formats)
    check_name(name)
    class_names = [str(c) for c in class_names]
    images = np.asarray(images, np.float32)
    servable = ClassifierServable(classifier, class_names, unknown_threshold)
    if images.ndim != 4 or tuple(images.shape[1:]) != servable.input_shape:
        raise ValueError(f"images must be [n, {', '.join(map(str, servable.input_shape))}], "
                         f"got {list(images.shape)}")
    expected = _expected(classifier(images, training=False)[:, :len(class_names)])
    facts = {"kind": "classifier", "class_names": class_names,
             "unknown_threshold": unknown_threshold,
             "signatures": {"serving_default": "images -> logits, probabilities, class_ids, "
                                               "class_names, unknown_score, is_unknown",
                            "serving_bytes": "image_bytes -> the same"},
             **(metadata or {})}
    return publish(export_dir, name, lambda staging: _write(
        staging, name, servable, {"images": images}, expected, facts, formats, fresh_process,
        class_names))


def reference_episode(input_shape, ways: int = 5, shots: int = 2, queries: int = 3,
                      seed: int = 424242):
    """A few-shot episode of generated glyph classes (none of the built-in dataset's), resized to
    ``input_shape``: ``(support_images, support_labels, query_images)`` to verify servables on."""
    from tfmeta.data import generate_glyphs, to_uint8_images

    height, _, channels = input_shape
    glyphs = generate_glyphs(num_classes=ways, samples_per_class=shots + queries, seed=seed)
    images = to_uint8_images(glyphs.images, height, channels).astype(np.float32) / 255.0
    per_class = images.reshape((ways, shots + queries) + tuple(input_shape))
    support = per_class[:, :shots].reshape((-1,) + tuple(input_shape))
    query = per_class[:, shots:].reshape((-1,) + tuple(input_shape))
    return support, np.repeat(np.arange(ways, dtype=np.int32), shots), query


def fewshot_saved_model(learner, export_dir: str = "savedmodels", name: str = "fewshot",
                        formats=(), metadata: dict | None = None, ways: int = 5, shots: int = 2,
                        fresh_process: bool = True) -> str:
    """Export a meta-trained learner as a servable that adapts inside the graph per request.

    Verified on a generated ``ways``-way ``shots``-shot episode against ``learner.adapt`` (the
    Keras path). Returns the version folder.
    """
    formats = _formats(formats)
    check_name(name)
    if learner.max_ways is not None:
        ways = min(ways, learner.max_ways)
    support_x, support_y, query_x = reference_episode(learner.input_shape, ways, shots)
    classifier = learner.adapt(support_x, support_y)
    expected = _expected(classifier(query_x, training=False)[:, :ways])
    servable = FewShotServable(learner)
    facts = {"kind": "fewshot", "algorithm": learner.name,
             "unknown_threshold": learner.unknown_threshold,
             "calibrations": list(learner.calibrations),
             "signatures": {"serving_default": "support_images, support_labels, query_images -> "
                                               "logits, probabilities, class_ids, unknown_score, "
                                               "is_unknown"},
             **(metadata or {})}
    inputs = {"support_images": support_x, "support_labels": support_y, "query_images": query_x}
    return publish(export_dir, name, lambda staging: _write(
        staging, name, servable, inputs, expected, facts, formats, fresh_process))


def embedding_saved_model(learner, images=None, export_dir: str = "savedmodels",
                          name: str = "embedding", formats=(), metadata: dict | None = None,
                          fresh_process: bool = True) -> str:
    """Export a meta-trained learner's features (``learner.embedding_model``) as the next
    version of ``name``: a SavedModel whose ``serving_default`` and ``embed`` signatures map
    ``images`` to ``embeddings``, and ``embedding.keras`` beside it (for a user's own Keras model).

    ``images`` (float32 ``[n, H, W, C]`` in [0, 1]): a support set of the user's domain; the MAML
    family needs them for its BatchNorm statistics, the others only to verify on (default: a
    generated reference episode). Every file is verified on them. Returns the version folder."""
    import keras

    formats = _formats(formats)
    check_name(name)
    embedder = learner.embedding_model(images)
    if images is None:
        images = reference_episode(learner.input_shape)[0]
    images = np.asarray(images, np.float32)
    expected = tf.cast(embedder(images, training=False), tf.float32).numpy()
    facts = {"kind": "embedding", "algorithm": learner.name,
             "embedding_size": int(expected.shape[-1]),
             "signatures": {"serving_default": "images -> embeddings", "embed": "the same"},
             **(metadata or {})}

    def write(staging):
        path = os.path.join(staging, EMBEDDING_FILE)
        embedder.save(path)
        reloaded = keras.models.load_model(path)
        difference = float(np.max(np.abs(tf.cast(reloaded(images, training=False),
                                                 tf.float32).numpy() - expected)))
        if not difference <= checks.TOLERANCE:
            raise ExportError(f"{EMBEDDING_FILE} reloads with other embeddings (max abs "
                              f"difference {difference:.3g}); nothing written")
        _write(staging, name, EmbeddingServable(embedder), {"images": images},
               {"embeddings": expected}, dict(facts, keras_max_abs_difference=difference),
               formats, fresh_process)

    return publish(export_dir, name, write)


def _write(staging, name, servable, inputs, expected, facts, formats, fresh_process,
           class_names=None):
    stage(f"writing the SavedModel of {name}")
    tf.saved_model.save(servable, staging, signatures=servable.signatures())
    # TF Serving replays this request before it serves the version (a few images suffice; the
    # few-shot servable's request is a whole episode).
    write_warmup(staging, name, {k: v[:WARMUP_IMAGES] if k == "images" else v
                                 for k, v in inputs.items()})
    np.savez(os.path.join(staging, checks.VERIFICATION_FILE),
             **{f"input:{k}": v for k, v in inputs.items()},
             **{f"expected:{k}": v for k, v in expected.items()})
    if class_names is not None:
        with open(os.path.join(staging, "labels.txt"), "w") as f:
            f.write("".join(f"{name}\n" for name in class_names))
    facts = dict(facts, input_shape=list(servable.input_shape), formats={},
                 tf_serving_warmup={"file": WARMUP_FILE, "requests": 1},
                 created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                 tensorflow=tf.__version__)
    from tfmeta.version import __version__

    facts["tfmeta"] = __version__
    try:
        for fmt in formats:
            stage(f"converting {name} to {FILES[fmt]}")
            facts["formats"][fmt] = CONVERTERS[fmt](staging, os.path.join(staging, FILES[fmt]))
        facts["max_abs_difference"] = verify(
            staging, [os.path.join(staging, FILES[f]) for f in formats], fresh_process)
    except ExportError as err:
        if not formats:
            raise
        raise ExportError(f"{err}; nothing written (the SavedModel alone may export: "
                          "--format savedmodel)") from None
    write_json(facts, os.path.join(staging, METADATA_FILE))


def read_metadata(version_dir: str) -> dict:
    path = os.path.join(version_dir, METADATA_FILE)
    if not os.path.isfile(os.path.join(version_dir, "saved_model.pb")) or not os.path.isfile(path):
        raise ExportError(f"{version_dir}: not a tfmeta export (saved_model.pb or {METADATA_FILE} "
                          "missing)")
    with open(path) as f:
        return json.load(f)


def describe(version_dir: str) -> str:
    """One line on what an export holds and how it was checked."""
    facts = read_metadata(version_dir)
    worst = max(facts["max_abs_difference"].values())
    files = ", ".join(["SavedModel"] + sorted(facts["formats"]) + (
        [EMBEDDING_FILE] if facts.get("kind") == "embedding" else []))
    output = "embeddings" if facts.get("kind") == "embedding" else "probabilities"
    return (f"{files}; each reloaded (here and in a fresh process) and matching the Keras model "
            f"(max abs difference of {output} {worst:.2g})")


def verify(version_dir: str, files=(), fresh_process: bool = True) -> dict:
    """Max abs differences of outputs from the stored Keras ones for the SavedModel and
    ``files``; raises :class:`ExportError` if any exceeds 1e-4, here or in a fresh process."""
    stage(f"verifying {', '.join(['the SavedModel'] + [os.path.basename(f) for f in files])} "
          "against the Keras model")
    try:
        differences, ok = checks.check(version_dir, list(files))
    except Exception as err:  # a runtime that cannot load or run the file
        raise ExportError(f"reloading the export failed ({first_line(err)})") from None
    if not ok:
        raise ExportError(f"exported model disagrees with the Keras model: max abs difference "
                          f"{_worst(differences)} (tolerance {checks.TOLERANCE})")
    if fresh_process:
        stage("verifying again in a fresh Python process without tfmeta")
        fresh = verify_in_fresh_process(version_dir, files)
        differences.update({f"fresh_process:{k}": v for k, v in fresh.items()})
    return differences


def _worst(differences: dict) -> str:
    key = max(differences, key=differences.get)
    return f"{differences[key]:.3g} ({key})"


def verify_in_fresh_process(version_dir: str, files=()) -> dict:
    """Run :mod:`.check` as a script in a new Python process (it imports no tfmeta)."""
    with open(checks.__file__) as f:
        source = f.read()
    version_dir = os.path.abspath(version_dir)
    args = [sys.executable, "-c", source, version_dir] + [os.path.abspath(p) for p in files]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(args, cwd=version_dir, env=env, capture_output=True, text=True,
                          timeout=900)
    lines = done.stdout.strip().splitlines()
    try:
        report = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ExportError(f"the fresh-process check failed: {tail}") from None
    if not report["ok"] or report["tfmeta_imported"]:
        raise ExportError(f"in a fresh process the export disagrees with the Keras model: max abs "
                          f"difference {_worst(report['max_abs_difference'])}")
    return report["max_abs_difference"]


def convert(version_dir: str, formats, fresh_process: bool = True) -> dict:
    """Convert an exported version to ``formats`` (``onnx``, ``tflite``) beside its SavedModel.

    Each file is verified before it takes its final name; an existing file is not replaced.
    Returns ``{format: path}``.
    """
    formats = _formats(formats)
    if not formats:
        raise ValueError(f"give at least one format: {', '.join(FORMATS)}")
    facts = read_metadata(version_dir)
    targets = {fmt: os.path.join(version_dir, FILES[fmt]) for fmt in formats}
    for path in targets.values():
        if os.path.exists(path):
            raise ExportError(f"{path} exists; delete it to convert again")
    work = tempfile.mkdtemp(prefix=".convert-", dir=version_dir)
    try:
        staged = {fmt: os.path.join(work, FILES[fmt]) for fmt in formats}
        for fmt in formats:
            stage(f"converting {version_dir} to {FILES[fmt]}")
            facts["formats"][fmt] = CONVERTERS[fmt](version_dir, staged[fmt])
        differences = verify(version_dir, list(staged.values()), fresh_process)
        for fmt in formats:
            os.replace(staged[fmt], targets[fmt])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    facts["max_abs_difference"] = {**facts.get("max_abs_difference", {}), **differences}
    write_json(facts, os.path.join(version_dir, METADATA_FILE))
    return targets
