"""Which learner exports to which format: adapted classifier and few-shot servable, each format
verified against the Keras model (max abs difference of probabilities <= 1e-4).

Run (about 5 minutes on 2 CPU cores; freshly initialised Conv4 width 8 learners, because what is
checked is the export, not accuracy)::

    python benchmarks/export_matrix.py --out runs/export_matrix

Prints a Markdown table (the one in README.md) and writes ``OUT/matrix.json``.
"""

import argparse
import json
import os
import shutil

import keras

import tfmeta.export
from tfmeta.data import EpisodeConfig
from tfmeta.learners import ALGORITHMS, create


def learner_for(algorithm, ways=5, shots=2):
    keras.utils.set_random_seed(0)
    return create(algorithm, "conv4", episode=EpisodeConfig(ways, shots, 15), backbone_width=8)


def attempt(export):
    try:
        path = export()
    except tfmeta.export.ExportError as err:
        return {"ok": False, "error": str(err)}
    with open(os.path.join(path, "assets.extra", "tfmeta.json")) as f:
        facts = json.load(f)
    return {"ok": True, "max_abs_difference": max(facts["max_abs_difference"].values()),
            "tflite_select_tf_ops": facts["formats"].get("tflite", {}).get("select_tf_ops")}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="runs/export_matrix")
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS))
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    rows = {}
    for algorithm in args.algorithms.split(","):
        learner = learner_for(algorithm)
        support, labels, _ = tfmeta.export.reference_episode(learner.input_shape, 5, 2)
        images, y, classes = learner.prepare_support(support, labels)
        classifier = learner.adapt(images, y)
        row = {}
        for fmt in ("savedmodel", "onnx", "tflite"):
            formats = [] if fmt == "savedmodel" else [fmt]
            row[f"classifier:{fmt}"] = attempt(lambda: tfmeta.export.saved_model(
                classifier, classes, images, args.out, algorithm, formats, fresh_process=False))
            row[f"fewshot:{fmt}"] = attempt(lambda: tfmeta.export.fewshot_saved_model(
                learner, args.out, f"{algorithm}-fewshot", formats, fresh_process=False))
        rows[algorithm] = row
        print(algorithm, {k: v["ok"] for k, v in row.items()}, flush=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "matrix.json"), "w") as f:
        json.dump(rows, f, indent=2)

    def cell(result):
        if not result["ok"]:
            return "no"
        return "yes (Flex)" if result.get("tflite_select_tf_ops") else "yes"

    print("\n| learner | classifier: SavedModel / ONNX / TFLite | few-shot servable: SavedModel / "
          "ONNX / TFLite |\n|---|---|---|")
    for algorithm, row in rows.items():
        c = " / ".join(cell(row[f"classifier:{f}"]) for f in ("savedmodel", "onnx", "tflite"))
        s = " / ".join(cell(row[f"fewshot:{f}"]) for f in ("savedmodel", "onnx", "tflite"))
        print(f"| {algorithm} | {c} | {s} |")
    worst = max(r["max_abs_difference"] for row in rows.values() for r in row.values() if r["ok"])
    print(f"\nlargest difference from the Keras model over every export: {worst:.2g}")
    for algorithm, row in rows.items():
        for key, result in row.items():
            if not result["ok"]:
                print(f"{algorithm} {key}: {result['error']}")


if __name__ == "__main__":
    main()
