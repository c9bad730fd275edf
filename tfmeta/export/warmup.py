"""TF Serving warm-up records: ``assets.extra/tf_serving_warmup_requests`` in a SavedModel.

TF Serving replays these requests when it loads a version, before it reports the version ready,
so the first user request does not pay for graph optimisation and kernel set-up
(https://www.tensorflow.org/tfx/serving/saved_model_warmup). The file is a TFRecord file of
``tensorflow.serving.PredictionLog`` messages, each a ``PredictLog`` holding a
``PredictRequest`` (model name, signature, input tensors).

The messages are encoded here from their field numbers (``tensorflow_serving/apis/
prediction_log.proto``, ``predict.proto``, ``model.proto``), so that writing them does not need
the ``tensorflow-serving-api`` package; the tests parse them back with that package.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")

# Field numbers of the TF Serving messages written here.
PREDICTION_LOG_PREDICT_LOG = 6
PREDICT_LOG_REQUEST = 1
PREDICT_REQUEST_MODEL_SPEC, PREDICT_REQUEST_INPUTS = 1, 2
MODEL_SPEC_NAME, MODEL_SPEC_SIGNATURE_NAME = 1, 3
MAP_KEY, MAP_VALUE = 1, 2


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2): a string, bytes or a nested message."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def predict_log(model_name: str, signature_name: str, inputs: dict) -> bytes:
    """One serialized ``PredictionLog`` whose ``predict_log.request`` asks ``signature_name`` of
    ``model_name`` for ``inputs`` (name -> array)."""
    spec = (_field(MODEL_SPEC_NAME, model_name.encode())
            + _field(MODEL_SPEC_SIGNATURE_NAME, signature_name.encode()))
    request = _field(PREDICT_REQUEST_MODEL_SPEC, spec) + b"".join(
        _field(PREDICT_REQUEST_INPUTS,
               _field(MAP_KEY, key.encode())
               + _field(MAP_VALUE, tf.make_tensor_proto(np.asarray(value)).SerializeToString()))
        for key, value in sorted(inputs.items()))
    return _field(PREDICTION_LOG_PREDICT_LOG, _field(PREDICT_LOG_REQUEST, request))


def write_warmup(version_dir: str, model_name: str, inputs: dict,
                 signature_name: str = "serving_default") -> str:
    """Write one warm-up request of ``inputs`` (the verification inputs) to the version's
    ``assets.extra/tf_serving_warmup_requests``; returns its path."""
    path = os.path.join(version_dir, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(predict_log(model_name, signature_name, inputs))
    return path
