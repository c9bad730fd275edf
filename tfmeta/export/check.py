"""Check an exported model the way a server or an edge runtime runs it.

This file imports only numpy, TensorFlow and (for ``.onnx``) onnxruntime, never tfmeta, so it can
run in a fresh Python process on a machine without tfmeta::

    python check.py savedmodels/NAME/1 [savedmodels/NAME/1/model.onnx ...]

It loads the SavedModel with ``tf.saved_model.load`` and runs its ``serving_default`` signature
(and ``serving_bytes`` on the same images encoded as PNG), runs each ``.onnx`` file with
onnxruntime and each ``.tflite`` file with the TFLite interpreter, all on the inputs stored in
``assets.extra/verification.npz``, and compares their ``probabilities`` (an embedding export's
``embeddings``) and ``unknown_score`` (relative to the score's size) with the ones stored there
(computed by the Keras model at export time). It prints one JSON object of maximum differences and
exits with status 1 if any exceeds the tolerance (default 1e-4).
"""

import json
import os
import sys
import warnings

import numpy as np

TOLERANCE = 1e-4
VERIFICATION_FILE = os.path.join("assets.extra", "verification.npz")


def load_verification(version_dir, every_output: bool = False):
    """``(inputs, output name, expected values)`` stored with an export: its first output
    (probabilities, or embeddings); with ``every_output``, ``(inputs, {output name: expected
    values})`` (an export may also hold unknown scores)."""
    with np.load(os.path.join(version_dir, VERIFICATION_FILE)) as data:
        inputs = {key[len("input:"):]: data[key] for key in data.files if key.startswith("input:")}
        expected = {key[len("expected:"):]: data[key] for key in data.files
                    if key.startswith("expected:")}
    if every_output:
        return inputs, expected
    output = "probabilities" if "probabilities" in expected else next(iter(expected))
    return inputs, output, expected[output]


def _pick(outputs, output):
    """``outputs[output]``, or for a tuple of names, ``{name: outputs[name]}``."""
    if isinstance(output, str):
        return np.asarray(outputs[output])
    return {name: np.asarray(outputs[name]) for name in output}


def run_savedmodel(version_dir, inputs, output="probabilities"):
    import tensorflow as tf

    loaded = tf.saved_model.load(version_dir)
    tensors = {k: tf.constant(v) for k, v in inputs.items()}
    outputs = {"savedmodel": _pick(loaded.signatures["serving_default"](**tensors), output)}
    for name in loaded.signatures:  # other signatures of the same inputs (an embedding's embed)
        if name not in ("serving_default", "serving_bytes"):
            outputs[f"savedmodel_{name}"] = _pick(loaded.signatures[name](**tensors), output)
    if "serving_bytes" in loaded.signatures:
        pixels = np.round(inputs["images"] * 255).astype(np.uint8)
        encoded = tf.stack([tf.io.encode_png(image) for image in pixels])
        outputs["savedmodel_bytes"] = _pick(
            loaded.signatures["serving_bytes"](image_bytes=encoded), output)
    return outputs


def run_onnx(path, inputs, output="probabilities"):
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    values = session.run(None, {i.name: inputs[i.name] for i in session.get_inputs()})
    return _pick(dict(zip(names, values)), output)


def run_tflite(path, inputs, output="probabilities"):
    try:  # the LiteRT runtime where installed, else TensorFlow's interpreter
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():  # tf.lite.Interpreter warns that LiteRT replaces it
        warnings.simplefilter("ignore")
        interpreter = Interpreter(model_path=path)
    runner = interpreter.get_signature_runner("serving_default")
    return _pick(runner(**inputs), output)  # the runner resizes inputs to their shapes


def check(version_dir, files=(), tolerance=TOLERANCE):
    """``{runtime: max |output - expected|}`` and whether all are within ``tolerance``, for
    every output stored with the export (probabilities or embeddings: ``runtime``; the others,
    unknown scores on the logits' scale: ``runtime:output``, relative to ``max(1, |expected|)``).
    """
    inputs, expected = load_verification(version_dir, every_output=True)
    first = "probabilities" if "probabilities" in expected else next(iter(expected))
    names = tuple(expected)
    results = run_savedmodel(version_dir, inputs, names)
    runtimes = {".onnx": run_onnx, ".tflite": run_tflite}
    for path in files:
        key = os.path.basename(path)
        run = runtimes.get(os.path.splitext(path)[1])
        if run is None:
            raise ValueError(f"{path}: not an .onnx or .tflite file")
        try:
            results[key] = run(path, inputs, names)
        except Exception as err:  # say which file a runtime could not load or run
            raise RuntimeError(f"{key}: {err}") from err
    differences = {}
    for key, values in results.items():
        for output, want in expected.items():
            got = values[output]
            scale = 1.0 if output == first else np.maximum(1.0, np.abs(want))
            differences[key if output == first else f"{key}:{output}"] = (
                float(np.max(np.abs(got - want) / scale)) if got.shape == want.shape
                else float("inf"))
    return differences, all(d <= tolerance for d in differences.values())


def main(argv):
    if not argv:
        print(__doc__)
        return 2
    differences, ok = check(argv[0], argv[1:])
    print(json.dumps({"max_abs_difference": differences, "ok": ok,
                      "tfmeta_imported": "tfmeta" in sys.modules}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
