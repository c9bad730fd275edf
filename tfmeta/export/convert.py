"""SavedModel -> ONNX (tf2onnx) and TFLite, converted from the SavedModel on disk.

Both convert ``serving_default`` without its string output (``class_names``): ONNX and TFLite get
``logits``, ``probabilities`` and ``class_ids``, and the class names are in ``labels.txt`` beside
them (line ``i`` names class id ``i``).
"""

from __future__ import annotations

import contextlib
import logging
import warnings

import tensorflow as tf

from tfmeta.errors import ExportError  # noqa: F401  (re-exported)

NUMERIC_OUTPUTS = ("logits", "probabilities", "class_ids", "unknown_score", "is_unknown",
                   "embeddings")
FILES = {"onnx": "model.onnx", "tflite": "model.tflite"}
ONNX_OPSET = 17
CONVERTER_LOGGERS = ("tf2onnx", "tensorflow", "absl")
# Ops TFLite has no built-in kernel for, in tfmeta's servables (the MAML family's in-graph inner
# loop differentiates; ridge solves a linear system); every op named *Grad is one too.
NOT_TFLITE_BUILTIN = ("Conv2DBackpropFilter", "Conv2DBackpropInput",
                      "SparseSoftmaxCrossEntropyWithLogits", "MatrixSolve")


def require(fmt: str) -> None:
    """One clear error if the packages converting to and checking ``fmt`` are not installed."""
    if fmt != "onnx":
        return  # TFLite: TensorFlow converts, its interpreter checks (LiteRT's where installed)
    import importlib

    missing = []
    for package in ("tf2onnx", "onnxruntime"):
        try:
            importlib.import_module(package)
        except ImportError:
            missing.append(package)
    if missing:
        raise ExportError(f"ONNX export needs {' and '.join(missing)}: pip install 'tfmeta[onnx]' "
                          "(or --format savedmodel / tflite)")


def first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:300]


@contextlib.contextmanager
def _quiet_converter():
    """The converters report each op they cannot convert through their loggers (tf2onnx's,
    TensorFlow's Python logger, absl's) and Python warnings; the one-line ExportError says what
    failed, so those loggers are raised to CRITICAL for the conversion and the warnings ignored.
    The process's stderr is left alone: TensorFlow's C++ messages follow its own level,
    ``TF_CPP_MIN_LOG_LEVEL`` (the command line sets 2: errors only)."""
    loggers = [logging.getLogger(name) for name in CONVERTER_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def numeric_function(loaded):
    """A ``tf.function`` running ``serving_default`` of a loaded SavedModel, numeric outputs only."""
    signature = loaded.signatures["serving_default"]
    specs = signature.structured_input_signature[1]

    def pick(outputs):
        return {key: outputs[key] for key in NUMERIC_OUTPUTS if key in outputs}

    if set(specs) == {"images"}:
        def classify(images):
            return pick(signature(images=images))
        order = ["images"]
    elif set(specs) == {"support_images", "support_labels", "query_images"}:
        def classify(support_images, support_labels, query_images):
            return pick(signature(support_images=support_images, support_labels=support_labels,
                                  query_images=query_images))
        order = ["support_images", "support_labels", "query_images"]
    else:
        raise ExportError(f"unknown serving_default inputs {sorted(specs)}")
    input_signature = [tf.TensorSpec(specs[name].shape, specs[name].dtype, name=name)
                       for name in order]
    return tf.function(classify, input_signature=input_signature)


def to_onnx(version_dir: str, path: str) -> dict:
    import tf2onnx

    loaded = tf.saved_model.load(version_dir)
    function = numeric_function(loaded)
    try:
        with _quiet_converter():
            tf2onnx.convert.from_function(function, input_signature=function.input_signature,
                                          opset=ONNX_OPSET, output_path=path)
    except Exception as err:  # tf2onnx raises many types for unsupported ops
        raise ExportError(f"ONNX conversion failed ({first_line(err)})") from None
    return {"opset": ONNX_OPSET}


def op_types(concrete) -> set:
    """The op types of a concrete function's graph and of every function it calls."""
    graph = concrete.graph.as_graph_def()
    return {node.op for node in graph.node} | {
        node.op for function in graph.library.function for node in function.node_def}


def to_tflite(version_dir: str, path: str) -> dict:
    """TFLite built-in ops if they suffice, else with TensorFlow ops (needs the Flex delegate).
    A graph with ops TFLite has no built-in kernel for goes straight to TensorFlow ops: a
    built-in attempt would fail, its converter printing a diagnostic per op from C++ to
    stderr, which no logger controls."""
    loaded = tf.saved_model.load(version_dir)
    concrete = numeric_function(loaded).get_concrete_function()
    errors = []
    needs_tf_ops = any(op.endswith("Grad") or op in NOT_TFLITE_BUILTIN
                       for op in op_types(concrete))
    for select_tf_ops in (True,) if needs_tf_ops else (False, True):
        converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], loaded)
        if select_tf_ops:
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS,
                                                   tf.lite.OpsSet.SELECT_TF_OPS]
        try:
            with _quiet_converter():
                model = converter.convert()
        except Exception as err:  # the converter raises ConverterError and others
            errors.append(first_line(err))
            continue
        with open(path, "wb") as f:
            f.write(model)
        return {"select_tf_ops": select_tf_ops}
    raise ExportError(f"TFLite conversion failed ({errors[-1]})")


CONVERTERS = {"onnx": to_onnx, "tflite": to_tflite}
QUANTIZATIONS = ("dynamic", "int8")


def to_quantized_tflite(version_dir: str, path: str, mode: str, images) -> dict:
    """A quantized TFLite file of a one-input export (``images``): ``"dynamic"``, weights in
    int8 (dynamic-range quantization); ``"int8"``, weights and activations in int8, calibrated on
    ``images`` (the export's support images: the representative dataset), with float kernels
    where an op has no int8 one. Inputs and outputs stay float."""
    if mode not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {mode!r}: use {', '.join(QUANTIZATIONS)}")
    loaded = tf.saved_model.load(version_dir)
    concrete = numeric_function(loaded).get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], loaded)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "int8":
        converter.representative_dataset = lambda: ([image[None]] for image in images)
    try:
        with _quiet_converter():
            model = converter.convert()
    except Exception as err:  # the converter raises ConverterError and others
        raise ExportError(f"{mode} TFLite quantization failed ({first_line(err)})") from None
    with open(path, "wb") as f:
        f.write(model)
    return {"bytes": len(model)}
