"""Ship adapted models: SavedModel in TF Serving's layout, ONNX and TFLite, each verified.

Every export writes ``EXPORT_DIR/NAME/<version>/`` (the next integer; see :mod:`.layout`)::

    saved_model.pb, variables/      the SavedModel TF Serving loads (signatures: .servables)
    labels.txt                      class names, line i = class id i (classifiers)
    model.onnx, model.tflite        with formats=("onnx", "tflite") or tfmeta.export.convert
    model_dynamic.tflite, model_int8.tflite   quantized (tfmeta.export.quantize), measured
    assets.extra/tfmeta.json        what it is: kind, algorithm, classes, input shape, checks
    assets.extra/verification.npz   inputs + the Keras model's probabilities on them
    assets.extra/tf_serving_warmup_requests   a request TF Serving replays on load (.warmup)
    embedding.keras                 an embedding export's Keras model (embedding_saved_model)

Nothing is reported as written before it is verified: the SavedModel and each converted file are
reloaded (``tf.saved_model.load``, onnxruntime, the TFLite interpreter) and must reproduce the
Keras model's probabilities within 1e-4, first in this process and then in a fresh Python process
that does not import tfmeta (:mod:`.check`). A mismatch is an :class:`ExportError` and leaves
nothing behind.

Python API::

    learner = tfmeta.load("runs/quickstart")
    images, labels, classes = learner.prepare_support(support_images, support_names)
    classifier = learner.adapt(images, labels)
    version_dir = tfmeta.export.saved_model(classifier, classes, images, name="glyphs")
    tfmeta.export.convert(version_dir, ["onnx", "tflite"])
    fewshot_dir = tfmeta.export.fewshot_saved_model(learner, name="glyphs-fewshot")
    embedding_dir = tfmeta.export.embedding_saved_model(learner, images, name="glyphs-embed")
"""

from tfmeta.errors import ExportError
from tfmeta.export.layout import check_name, next_version, versions
from tfmeta.export.servables import ClassifierServable, EmbeddingServable, FewShotServable
from tfmeta.export.quantize import describe_quantized, quantize
from tfmeta.export.writer import (EMBEDDING_FILE, FORMATS, METADATA_FILE, convert, describe,
                                  embedding_saved_model, fewshot_saved_model, read_metadata,
                                  reference_episode, saved_model, verify,
                                  verify_in_fresh_process)

__all__ = ["ClassifierServable", "EMBEDDING_FILE", "EmbeddingServable", "ExportError", "FORMATS",
           "FewShotServable", "METADATA_FILE", "check_name", "convert", "describe",
           "describe_quantized", "embedding_saved_model", "fewshot_saved_model", "next_version",
           "quantize", "read_metadata",
           "reference_episode", "saved_model", "verify", "verify_in_fresh_process", "versions"]
