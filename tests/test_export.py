"""Adapt and ship: SavedModel (TF Serving layout), ONNX and TFLite agree with Keras; the few-shot
servable agrees with learner.predict; versions never overwrite; bad support folders write nothing."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import onnxruntime
import pytest
import tensorflow as tf

import tfmeta.export
from tfmeta.data import EpisodeConfig, generate_glyphs, to_uint8_images
from tfmeta.export import ExportError, layout
from tfmeta.learners import create

from learner_cases import smoke_options

NAMES = np.array(["alpha", "beta", "gamma", "delta", "epsilon"])


def _learner(algorithm, ways=5, width=8, seed=0):
    """A freshly initialised Conv4 learner: what is checked here is that every runtime gives the
    Keras model's answers, which needs no training."""
    keras.utils.set_random_seed(seed)
    episode = EpisodeConfig(ways, 2, 15)
    return create(algorithm, "conv4", episode=episode, backbone_width=width,
                  **smoke_options(algorithm, episode) if algorithm in BASELINES else {})


def _episode(ways, shots, queries, seed):
    """uint8 glyph images of classes no run has seen: support, support names, query, query names."""
    glyphs = generate_glyphs(num_classes=ways, samples_per_class=shots + queries, seed=seed)
    per_class = glyphs.images.reshape((ways, shots + queries, 28, 28, 1))
    support = per_class[:, :shots].reshape((-1, 28, 28, 1))
    query = per_class[:, shots:].reshape((-1, 28, 28, 1))
    return (support, np.repeat(NAMES[:ways], shots), query, np.repeat(NAMES[:ways], queries))


def _png(images):
    return tf.stack([tf.io.encode_png(image) for image in images])


def _onnx(path, **inputs):
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, inputs)))


def _replay_warmup(version_dir, name, expected_output):
    """Parse the export's TF Serving warm-up file with TF Serving's own messages (the
    tensorflow-serving-api package) and replay each request through the loaded SavedModel, as
    TF Serving does on load: the request names the model and a signature of it, and its inputs
    give that signature's outputs (compared with the export's verification outputs)."""
    from tensorflow_serving.apis import prediction_log_pb2

    path = os.path.join(version_dir, "assets.extra", "tf_serving_warmup_requests")
    records = list(tf.data.TFRecordDataset(path).as_numpy_iterator())
    assert len(records) == 1
    log = prediction_log_pb2.PredictionLog.FromString(records[0])
    request = log.predict_log.request
    assert log.WhichOneof("log_type") == "predict_log"
    assert (request.model_spec.name, request.model_spec.signature_name) == (
        name, "serving_default")
    signature = tf.saved_model.load(version_dir).signatures["serving_default"]
    assert set(request.inputs) == set(signature.structured_input_signature[1])
    inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
    verification = np.load(os.path.join(version_dir, "assets.extra", "verification.npz"))
    for key, value in inputs.items():  # the verification inputs (a classifier's first images)
        np.testing.assert_array_equal(value, verification[f"input:{key}"][:len(value)])
    got = signature(**{k: tf.constant(v) for k, v in inputs.items()})[expected_output].numpy()
    want = verification[f"expected:{expected_output}"][:len(got)]
    np.testing.assert_allclose(got, want, atol=1e-4)


def _tflite(path, **inputs):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_path=path)
    return interpreter.get_signature_runner("serving_default")(**inputs)


# The fine-tuning baselines' heads fit themselves to the support set in a tf.while_loop.
BASELINES = ("baseline", "baseline++", "rfs")


@pytest.mark.parametrize("algorithm", ["maml", "reptile", "protonet", "rfs", "baseline++"])
def test_keras_savedmodel_onnx_tflite_agree_on_new_images(tmp_path, algorithm):
    learner = _learner(algorithm)
    support, names, query, truth = _episode(3, 2, 4, seed=901)
    images, labels, classes = learner.prepare_support(support, names)
    classifier = learner.adapt(images, labels)
    name = algorithm.replace("+", "p")  # a model name: letters, digits, '_', '-', '.'
    version_dir = tfmeta.export.saved_model(classifier, classes, images, str(tmp_path), name,
                                            formats=["onnx", "tflite"], fresh_process=False)
    assert version_dir == os.path.join(str(tmp_path), name, "1")
    assert sorted(os.listdir(tmp_path / name)) == ["1"]  # no staging folder left

    # query images the export was not verified on, through every runtime
    x = learner.preprocess(query).numpy()
    keras_p = tf.nn.softmax(classifier(x, training=False)[:, :3]).numpy()
    loaded = tf.saved_model.load(version_dir)
    served = loaded.signatures["serving_default"](images=tf.constant(x))
    from_bytes = loaded.signatures["serving_bytes"](image_bytes=_png(query))
    results = {
        "savedmodel": served["probabilities"].numpy(),
        "savedmodel_bytes": from_bytes["probabilities"].numpy(),
        "onnx": _onnx(os.path.join(version_dir, "model.onnx"), images=x)["probabilities"],
        "tflite": _tflite(os.path.join(version_dir, "model.tflite"), images=x)["probabilities"]}
    for runtime, p in results.items():
        assert p.shape == keras_p.shape
        np.testing.assert_allclose(p, keras_p, atol=1e-4, err_msg=runtime)
    predicted = learner.predict(support, names, query)  # the numpy API, on uint8 images
    assert [n.decode() for n in served["class_names"].numpy()] == list(predicted)
    assert [n.decode() for n in from_bytes["class_names"].numpy()] == list(predicted)
    assert list(classes[served["class_ids"].numpy()]) == list(predicted)
    labels_txt = open(os.path.join(version_dir, "labels.txt")).read().split()
    assert labels_txt == list(classes)
    facts = json.load(open(os.path.join(version_dir, "assets.extra", "tfmeta.json")))
    assert facts["class_names"] == list(classes) and set(facts["formats"]) == {"onnx", "tflite"}
    assert max(facts["max_abs_difference"].values()) <= 1e-4
    _replay_warmup(version_dir, name, "probabilities")


def test_serving_bytes_decodes_rgb_and_other_sizes_like_the_loaders(tmp_path):
    learner = _learner("protonet")
    support, names, _, _ = _episode(3, 1, 0, seed=902)
    images, labels, classes = learner.prepare_support(support, names)
    version_dir = tfmeta.export.saved_model(learner.adapt(images, labels), classes, images,
                                            str(tmp_path), "p", fresh_process=False)
    rgb = np.random.default_rng(0).integers(0, 256, (4, 40, 36, 3), dtype=np.uint8)
    loaded = tf.saved_model.load(version_dir)
    from_bytes = loaded.signatures["serving_bytes"](image_bytes=_png(rgb))["logits"].numpy()
    from_numpy = loaded.signatures["serving_default"](
        images=learner.preprocess(rgb))["logits"].numpy()
    np.testing.assert_allclose(from_bytes, from_numpy, atol=1e-3)
    jpegs = tf.stack([tf.io.encode_jpeg(image) for image in rgb])  # JPEG: compare decoded pixels
    decoded = np.stack([tf.io.decode_jpeg(j).numpy() for j in jpegs.numpy()])
    from_jpeg = loaded.signatures["serving_bytes"](image_bytes=jpegs)["logits"].numpy()
    from_decoded = loaded.signatures["serving_default"](
        images=learner.preprocess(decoded))["logits"].numpy()
    np.testing.assert_allclose(from_jpeg, from_decoded, atol=1e-3)


@pytest.mark.parametrize("algorithm", ["maml", "anil", "metasgd", "protonet", "baseline"])
def test_fewshot_servable_gives_learner_predict_answers(tmp_path, algorithm):
    learner = _learner(algorithm)
    formats = ["onnx", "tflite"] if algorithm in ("protonet", "baseline") else []
    version_dir = tfmeta.export.fewshot_saved_model(learner, str(tmp_path), "fs", formats,
                                                    ways=3, shots=1, fresh_process=False)
    _replay_warmup(version_dir, "fs", "probabilities")
    signature = tf.saved_model.load(version_dir).signatures["serving_default"]
    for ways, shots in ((2, 1), (4, 3)):  # one served model, new classes of any number per request
        support, names, query, _ = _episode(ways, shots, 3, seed=903 + ways)
        classes, expected = learner.predict_proba(support, names, query)
        labels = np.searchsorted(classes, names).astype(np.int32)
        inputs = dict(support_images=learner.preprocess(support).numpy(), support_labels=labels,
                      query_images=learner.preprocess(query).numpy())
        served = signature(**{k: tf.constant(v) for k, v in inputs.items()})
        np.testing.assert_allclose(served["probabilities"].numpy(), expected, atol=1e-4)
        assert list(classes[served["class_ids"].numpy()]) == list(
            learner.predict(support, names, query))
        if formats:
            p = _onnx(os.path.join(version_dir, "model.onnx"), **inputs)["probabilities"]
            np.testing.assert_allclose(p, expected, atol=1e-4)
            p = _tflite(os.path.join(version_dir, "model.tflite"), **inputs)["probabilities"]
            np.testing.assert_allclose(p, expected, atol=1e-4)
    with pytest.raises(tf.errors.InvalidArgumentError, match="every label"):
        signature(support_images=tf.constant(inputs["support_images"][:2]),
                  support_labels=tf.constant([0, 2], tf.int32),
                  query_images=tf.constant(inputs["query_images"]))


def test_versions_count_up_and_never_overwrite(tmp_path, monkeypatch):
    def write(marker):
        return lambda staging: open(os.path.join(staging, "marker"), "w").write(marker)

    assert layout.publish(str(tmp_path), "m", write("a")).endswith(os.path.join("m", "1"))
    assert layout.publish(str(tmp_path), "m", write("b")).endswith(os.path.join("m", "2"))
    os.makedirs(tmp_path / "m" / "7")
    assert layout.next_version(str(tmp_path), "m") == 8
    stale = iter([2, 7])  # another process took versions 2 and 7 after we looked
    real = layout.next_version
    monkeypatch.setattr(layout, "next_version",
                        lambda d, n: next(stale, None) or real(d, n))
    path = layout.publish(str(tmp_path), "m", write("c"))
    assert path.endswith(os.path.join("m", "8"))
    assert open(tmp_path / "m" / "1" / "marker").read() == "a"
    assert open(tmp_path / "m" / "2" / "marker").read() == "b"
    assert sorted(os.listdir(tmp_path / "m")) == ["1", "2", "7", "8"]
    with pytest.raises(tfmeta.data.DataError, match="model name"):
        layout.publish(str(tmp_path), "../evil", write("d"))


def test_a_mismatch_is_an_error_and_leaves_nothing(tmp_path, monkeypatch):
    learner = _learner("protonet")
    support, names, _, _ = _episode(3, 1, 0, seed=904)
    images, labels, classes = learner.prepare_support(support, names)
    classifier = learner.adapt(images, labels)
    import tfmeta.export.check as check_module

    monkeypatch.setattr(check_module, "check",
                        lambda version_dir, files: ({"savedmodel": 0.25}, False))
    export_dir = tmp_path / "exports"
    with pytest.raises(ExportError, match="disagrees with the Keras model"):
        tfmeta.export.saved_model(classifier, classes, images, str(export_dir), "x",
                                  fresh_process=False)
    assert not export_dir.exists()


def _run(*args, cwd=None, timeout=600):
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    return subprocess.run(list(args), capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=timeout)


@pytest.fixture(scope="module")
def protonet_run(tmp_path_factory):
    from tfmeta.data import DataConfig, EpisodeConfig
    from tfmeta.run import RunConfig, TrainConfig, train

    out = tmp_path_factory.mktemp("runs") / "protonet"
    train(RunConfig(algorithm="protonet", data=DataConfig("glyphs"),
                    episode=EpisodeConfig(3, 1, 2), width=8,
                    train=TrainConfig(steps=4, meta_batch=2, val_every=4, val_episodes=2,
                                      test_episodes=4)), str(out), progress=False)
    return str(out)


def _glyph_folder(root, classes, per_class, size=28, seed=905):
    glyphs = generate_glyphs(num_classes=len(classes), samples_per_class=per_class, seed=seed)
    for c, name in enumerate(classes):
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for i, image in enumerate(to_uint8_images(glyphs.class_images(c), size, 1)):
            with open(os.path.join(root, name, f"{i}.png"), "wb") as f:
                f.write(tf.io.encode_png(image).numpy())


@pytest.mark.xdist_group("protonet_run")  # its tests share one trained run (one worker)
def test_cli_adapt_then_export_in_fresh_processes(tmp_path, protonet_run):
    examples = os.path.join(os.path.dirname(__file__), "..", "examples", "make_support_folder.py")
    r = _run(sys.executable, examples, str(tmp_path / "demo"), "--ways", "3", "--shots", "2")
    assert r.returncode == 0, r.stderr
    exports = str(tmp_path / "savedmodels")
    adapt = ["tfmeta", "adapt", "--checkpoint", protonet_run, "--support",
             str(tmp_path / "demo" / "support"), "--name", "glyphs", "--export-dir", exports]
    r = _run(*adapt)
    assert r.returncode == 0, r.stderr
    assert "savedmodels/glyphs/1" in r.stdout and "fresh process" in r.stdout
    # each long step is said as it starts (plain lines off a terminal)
    steps = ["adapting protonet to 3 classes, 6 support images", "writing the SavedModel of glyphs",
             "verifying the SavedModel against the Keras model",
             "verifying again in a fresh Python process without tfmeta"]
    lines = r.stdout.splitlines()
    assert [line for line in lines if line in steps] == steps, r.stdout
    version_dir = os.path.join(exports, "glyphs", "1")
    r = _run("tfmeta", "export", "--model", version_dir, "--format", "onnx", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "converting" not in r.stdout and "verifying" not in r.stdout, r.stdout
    assert os.path.isfile(os.path.join(version_dir, "model.onnx"))
    r = _run("tfmeta", "export", "--model", version_dir, "--format", "onnx")
    assert r.returncode == 2 and "exists" in r.stderr and "Traceback" not in r.stderr
    r = _run(*adapt)
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(os.path.join(exports, "glyphs"))) == ["1", "2"]
    # what a server or an edge runtime does: plain TensorFlow / onnxruntime, no tfmeta
    check = os.path.join(os.path.dirname(tfmeta.export.__file__), "check.py")
    r = _run(sys.executable, "-c", open(check).read(), version_dir,
             os.path.join(version_dir, "model.onnx"), cwd=version_dir)
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert r.returncode == 0 and report["ok"] and not report["tfmeta_imported"], r.stdout
    runtimes = {"savedmodel", "savedmodel_bytes", "model.onnx"}  # probabilities and unknown scores
    assert set(report["max_abs_difference"]) == runtimes | {f"{r}:unknown_score" for r in runtimes}


@pytest.mark.xdist_group("protonet_run")  # its tests share one trained run (one worker)
@pytest.mark.parametrize("layout_name, message", [
    ("one_class", "at least 2 class folders"),
    ("empty_class", "holds no images"),
    ("non_image", "is not an image"),
    ("mixed_sizes", "differ in size"),
    ("loose_image", "lies beside the class folders"),
    ("bad_name", "model name"),
])
def test_cli_adapt_bad_support_is_one_line_and_writes_nothing(tmp_path, capsys, protonet_run,
                                                              layout_name, message):
    from tfmeta.cli import main

    support = tmp_path / "support"
    _glyph_folder(support, ["a"] if layout_name == "one_class" else ["a", "b"], 2)
    if layout_name == "empty_class":
        os.makedirs(support / "c")
    elif layout_name == "non_image":
        (support / "b" / "notes.txt").write_text("not an image")
    elif layout_name == "mixed_sizes":
        _glyph_folder(support, ["c"], 1, size=32)
    elif layout_name == "loose_image":
        (support / "x.png").write_bytes((support / "a" / "0.png").read_bytes())
    exports = tmp_path / "savedmodels"
    name = "../up" if layout_name == "bad_name" else "bad"
    capsys.readouterr()
    assert main(["adapt", "--checkpoint", protonet_run, "--support", str(support), "--name", name,
                 "--export-dir", str(exports)]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("tfmeta")]
    assert len(lines) == 1 and message in lines[0], err
    assert not exports.exists() and not (tmp_path / "up").exists()


def test_maml_head_too_small_for_the_support_is_refused(tmp_path):
    learner = _learner("maml", ways=3)
    support, names, _, _ = _episode(4, 1, 0, seed=906)
    with pytest.raises(tfmeta.data.DataError, match="at most 3 classes but the support has 4"):
        learner.prepare_support(support, names)
    images = learner.preprocess(support)
    labels = np.unique(names, return_inverse=True)[1]
    with pytest.raises(tfmeta.data.DataError, match="at most 3 classes but the support has 4"):
        learner.adapt(images, labels)


@pytest.mark.xdist_group("protonet_run")  # its tests share one trained run (one worker)
def test_mixed_sizes_are_accepted_with_resize(tmp_path, protonet_run):
    from tfmeta.cli import main

    support = tmp_path / "support"
    _glyph_folder(support, ["a", "b"], 2)
    _glyph_folder(support, ["c"], 1, size=32)
    assert main(["adapt", "--checkpoint", protonet_run, "--support", str(support), "--name", "r",
                 "--export-dir", str(tmp_path / "e"), "--resize"]) == 0
    assert open(tmp_path / "e" / "r" / "1" / "labels.txt").read().split() == ["a", "b", "c"]


@pytest.mark.parametrize("algorithm", ["ridge", "relation"])
def test_classifiers_whose_head_has_learned_parts_export(tmp_path, algorithm):
    """Regression: the adapted classifier of a learner with parts (ridge's calibration, the
    relation module) captured their variables without tracking them, and could not be saved."""
    learner = _learner(algorithm)
    support, names, query, _ = _episode(3, 1, 2, seed=907)
    images, labels, classes = learner.prepare_support(support, names)
    classifier = learner.adapt(images, labels)
    version_dir = tfmeta.export.saved_model(classifier, classes, images, str(tmp_path), "h",
                                            fresh_process=False)
    x = learner.preprocess(query)
    served = tf.saved_model.load(version_dir).signatures["serving_default"](images=x)
    np.testing.assert_allclose(served["logits"].numpy(),
                               classifier(x, training=False).numpy(), atol=1e-4)


def test_a_format_that_cannot_be_converted_is_an_error_and_writes_nothing(tmp_path):
    """MAML's in-graph inner loop has gradient ops that tf2onnx cannot convert: refused, not
    shipped without its ONNX file or with an unverified one."""
    export_dir = tmp_path / "exports"
    with pytest.raises(ExportError, match="ONNX conversion failed.*--format savedmodel"):
        tfmeta.export.fewshot_saved_model(_learner("maml"), str(export_dir), "fs", ["onnx"],
                                          ways=3, shots=1, fresh_process=False)
    assert not export_dir.exists()


def test_converters_are_quiet_through_their_loggers_and_leave_stderr_alone(tmp_path, capfd):
    """MAML's few-shot servable needs TensorFlow ops in TFLite: it is converted with them
    directly, so TFLite's converter prints no per-op diagnostics (from C++, which no logger
    controls), and the file is refused in one line since TFLite's interpreter has no Flex
    delegate here. While a converter runs, the process's own stderr still reaches the terminal."""
    import logging

    from tfmeta.export.convert import _quiet_converter

    with pytest.raises(ExportError, match="Select TensorFlow op"):
        tfmeta.export.fewshot_saved_model(_learner("maml"), str(tmp_path), "fs", ["tflite"],
                                          ways=3, shots=1, fresh_process=False)
    assert "neither a custom op nor a flex op" not in capfd.readouterr().err
    with _quiet_converter():
        assert logging.getLogger("tf2onnx").level == logging.CRITICAL
        os.write(2, b"still visible\n")
    assert "still visible" in capfd.readouterr().err


@pytest.mark.parametrize("algorithm", ["protonet", "maml"])
def test_embedding_export_gives_the_meta_learned_features_in_every_runtime(tmp_path, algorithm):
    """``embed`` (SavedModel), embedding.keras and ONNX give the features the learner computes:
    a metric learner's model in inference mode; for MAML the body below the head with the
    support set's BatchNorm statistics, as the classifier adapt() builds from theta has them."""
    learner = _learner(algorithm)
    support, _, query, _ = _episode(5, 2, 3, seed=31)
    images = learner.preprocess(support).numpy()
    queries = learner.preprocess(query).numpy()
    version = tfmeta.export.embedding_saved_model(learner, images, str(tmp_path), "embed",
                                                  formats=["onnx"] if algorithm == "maml" else ())
    if algorithm == "maml":
        classifier = learner.adapted_classifier(learner.weights(), images)
        expected = keras.Model(classifier.inputs, classifier.layers[-1].input)(queries)
    else:
        expected = learner.model(queries, training=False)
    expected = np.reshape(np.asarray(expected), (len(queries), -1))
    loaded = tf.saved_model.load(version)
    for name in ("embed", "serving_default"):
        got = loaded.signatures[name](images=tf.constant(queries))["embeddings"].numpy()
        np.testing.assert_allclose(got, expected, atol=1e-5)
    reloaded = keras.models.load_model(os.path.join(version, "embedding.keras"))
    np.testing.assert_allclose(np.asarray(reloaded(queries)), expected, atol=1e-5)
    facts = tfmeta.export.read_metadata(version)
    assert facts["kind"] == "embedding" and facts["embedding_size"] == expected.shape[1]
    _replay_warmup(version, "embed", "embeddings")
    if algorithm == "maml":
        np.testing.assert_allclose(_onnx(os.path.join(version, "model.onnx"),
                                         images=queries)["embeddings"], expected, atol=1e-5)


def test_embedding_export_from_the_command_line(tmp_path, capsys):
    from tfmeta.cli import main
    from tfmeta.run import RunConfig, TrainConfig, train

    run = str(tmp_path / "run")
    train(RunConfig(algorithm="maml", episode=EpisodeConfig(3, 1, 2), width=8,
                    train=TrainConfig(steps=2, meta_batch=2, val_every=2, val_episodes=2,
                                      test_episodes=2)), run, progress=False)
    support = tmp_path / "support"
    for name, (image, *_) in zip(NAMES[:3], np.split(_episode(3, 2, 1, seed=5)[0], 3)):
        (support / name).mkdir(parents=True)
        tf.io.write_file(str(support / name / "a.png"), tf.io.encode_png(image))
    out = str(tmp_path / "models")
    assert main(["export", "--embedding", "--checkpoint", run, "--name", "feat",
                 "--export-dir", out]) == 2
    assert "give images (a support folder)" in capsys.readouterr().err
    assert not os.path.exists(out)
    assert main(["export", "--embedding", "--checkpoint", run, "--name", "feat",
                 "--export-dir", out, "--support", str(support)]) == 0
    assert "embedding.keras" in capsys.readouterr().out
    assert sorted(os.listdir(os.path.join(out, "feat", "1")))[:3] == [
        "assets", "assets.extra", "embedding.keras"]
    assert main(["export", "--name", "x"]) == 2  # neither a conversion nor --embedding


def test_without_the_onnx_extra_savedmodels_export_and_onnx_says_what_to_install(
        tmp_path, monkeypatch, capsys):
    """``pip install tfmeta`` has no ONNX stack: SavedModel exports work, an ONNX export is one
    line naming the extra, and nothing is written."""
    import sys

    learner = _learner("protonet")
    support, names, _, _ = _episode(5, 2, 1, seed=3)
    images, labels, classes = learner.prepare_support(support, names)
    classifier = learner.adapt(images, labels)
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # import tf2onnx raises ImportError
    with pytest.raises(ExportError, match=r"ONNX export needs tf2onnx: pip install 'tfmeta\[onnx\]'"):
        tfmeta.export.saved_model(classifier, classes, images, str(tmp_path), "m", ["onnx"])
    assert not os.path.exists(tmp_path / "m")
    version = tfmeta.export.saved_model(classifier, classes, images, str(tmp_path), "m",
                                        fresh_process=False)
    assert os.path.isfile(os.path.join(version, "saved_model.pb"))


def test_quantized_tflite_is_smaller_agrees_and_is_reported(tmp_path):
    learner = _learner("protonet", width=32)
    support, names, _, _ = _episode(5, 2, 1, seed=8)
    images, labels, classes = learner.prepare_support(support, names)
    version = tfmeta.export.saved_model(learner.adapt(images, labels), classes, images,
                                        str(tmp_path), "q", fresh_process=False)
    report = tfmeta.export.quantize(version, ["dynamic", "int8"])
    for mode in ("dynamic", "int8"):
        r = report[mode]
        assert os.path.getsize(os.path.join(version, f"model_{mode}.tflite")) == r["bytes"]
        assert r["bytes"] < 0.5 * r["float_tflite_bytes"]  # 4-byte weights became 1-byte ones
        assert r["top1_agreement"] >= 0.8 and r["max_abs_difference"] < 0.2
        # the report is the file's own behaviour: run it here
        probabilities = _tflite(os.path.join(version, r["file"]),
                                images=images.numpy())["probabilities"]
        expected = tf.nn.softmax(learner.adapt(images, labels)(images)).numpy()
        assert np.mean(probabilities.argmax(-1) == expected.argmax(-1)) == r["top1_agreement"]
    assert tfmeta.export.read_metadata(version)["quantized"]["int8"] == report["int8"]
    assert "top-1 agreement with the Keras model" in tfmeta.export.describe_quantized(report)
    with pytest.raises(ExportError, match="exists"):
        tfmeta.export.quantize(version, "dynamic")
    fewshot = tfmeta.export.fewshot_saved_model(learner, str(tmp_path), "f",
                                                fresh_process=False)
    with pytest.raises(ExportError, match="quantization is for adapted classifiers"):
        tfmeta.export.quantize(fewshot, "dynamic")
