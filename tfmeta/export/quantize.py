"""Quantized TFLite files of an export, beside its SavedModel, each measured against the Keras
model it came from (size, agreement, largest difference)."""

from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np

from tfmeta.errors import ExportError
from tfmeta.export import check as checks
from tfmeta.export.convert import FILES, QUANTIZATIONS, to_quantized_tflite, to_tflite
from tfmeta.export.writer import METADATA_FILE, read_metadata
from tfmeta.files import write_json


def quantize(version_dir: str, modes) -> dict:
    """Quantized TFLite files of an exported classifier or embedding, beside its SavedModel:
    ``model_dynamic.tflite`` and / or ``model_int8.tflite`` (:func:`.convert.to_quantized_tflite`),
    each measured on the export's verification images against the Keras model it came from:
    size (and the float TFLite file's), top-1 agreement of the predicted classes (embeddings: the
    mean cosine similarity) and the largest difference of probabilities. The figures go into
    ``assets.extra/tfmeta.json`` (``quantized``) and are returned; an existing file is not
    replaced. Quantization changes answers: nothing is refused for a difference, it is reported."""
    modes = [modes] if isinstance(modes, str) else list(modes)
    unknown = sorted(set(modes) - set(QUANTIZATIONS))
    if unknown or not modes:
        raise ValueError(f"quantize as {' and / or '.join(QUANTIZATIONS)}, got {modes}")
    facts = read_metadata(version_dir)
    inputs, output, expected = checks.load_verification(version_dir)
    if set(inputs) != {"images"}:
        raise ExportError("quantization is for adapted classifiers and embeddings (one images "
                          "input); the few-shot servable adapts inside its graph")
    targets = {mode: os.path.join(version_dir, f"model_{mode}.tflite") for mode in modes}
    for path in targets.values():
        if os.path.exists(path):
            raise ExportError(f"{path} exists; delete it to quantize again")
    work = tempfile.mkdtemp(prefix=".quantize-", dir=version_dir)
    report = {}
    try:
        float_path = os.path.join(version_dir, FILES["tflite"])
        if not os.path.exists(float_path):  # only to compare sizes
            float_path = os.path.join(work, FILES["tflite"])
            to_tflite(version_dir, float_path)
        for mode in modes:
            staged = os.path.join(work, os.path.basename(targets[mode]))
            to_quantized_tflite(version_dir, staged, mode, inputs["images"])
            got = checks.run_tflite(staged, inputs, output)
            report[mode] = {"file": os.path.basename(targets[mode]),
                            "bytes": os.path.getsize(staged),
                            "float_tflite_bytes": os.path.getsize(float_path),
                            "images": int(len(expected)),
                            "max_abs_difference": float(np.max(np.abs(got - expected)))}
            if output == "embeddings":
                cosine = np.sum(got * expected, -1) / (
                    np.linalg.norm(got, axis=-1) * np.linalg.norm(expected, axis=-1) + 1e-12)
                report[mode]["mean_cosine_similarity"] = float(np.mean(cosine))
            else:
                report[mode]["top1_agreement"] = float(np.mean(
                    got.argmax(-1) == expected.argmax(-1)))
        for mode in modes:
            os.replace(os.path.join(work, os.path.basename(targets[mode])), targets[mode])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    facts["quantized"] = {**facts.get("quantized", {}), **report}
    write_json(facts, os.path.join(version_dir, METADATA_FILE))
    return report


def describe_quantized(report: dict) -> str:
    """One line per quantized file: size against the float TFLite file, agreement."""
    lines = []
    for mode, r in report.items():
        agreement = (f"top-1 agreement with the Keras model {r['top1_agreement']:.0%}"
                     if "top1_agreement" in r else
                     f"mean cosine similarity to the Keras embeddings "
                     f"{r['mean_cosine_similarity']:.4f}")
        lines.append(f"{r['file']}: {r['bytes'] / 1024:.0f} KiB (float TFLite "
                     f"{r['float_tflite_bytes'] / 1024:.0f} KiB, "
                     f"{r['bytes'] / r['float_tflite_bytes']:.2f}x); {agreement} on "
                     f"the {r['images']} support images (int8's calibration images too), "
                     "largest difference "
                     f"{r['max_abs_difference']:.3g}")
    return "\n".join(lines)
