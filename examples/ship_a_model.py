"""Adapt a meta-trained run to a few labelled images and ship it, from Python.

Steps: load the run, read a support folder (one subfolder of images per class), adapt, export the
classifier as the next version of `savedmodels/<name>/` with ONNX and TFLite beside it (each
verified against the Keras model), then export the few-shot servable that adapts per request.

Run (after `tfmeta quickstart`, or any `tfmeta train --out RUN`):
    python examples/make_support_folder.py demo
    python examples/ship_a_model.py runs/quickstart demo/support glyphs
"""

import json
import os
import sys

import numpy as np

import tfmeta
import tfmeta.export
from tfmeta.data import support_from_folder


def main(run_dir, support_dir, name, export_dir="savedmodels"):
    learner = tfmeta.load(run_dir)
    height, _, channels = learner.input_shape
    support = support_from_folder(support_dir, height, channels)
    names = np.array(support.class_names)[support.labels()]
    images, labels, classes = learner.prepare_support(support.images, names)
    classifier = learner.adapt(images, labels)  # a plain keras.Model: images -> logits
    version_dir = tfmeta.export.saved_model(classifier, classes, images, export_dir, name,
                                            formats=["onnx", "tflite"])
    with open(os.path.join(version_dir, "assets.extra", "tfmeta.json")) as f:
        checks = json.load(f)["max_abs_difference"]
    print(f"{version_dir}: {', '.join(sorted(os.listdir(version_dir)))}")
    print(f"largest difference from Keras over {len(checks)} checks: {max(checks.values()):.2g}")
    try:
        fewshot_dir = tfmeta.export.fewshot_saved_model(learner, export_dir, f"{name}-fewshot")
        print(f"{fewshot_dir}: few-shot servable (new classes per request)")
    except tfmeta.export.ExportError as err:
        print(f"few-shot servable not exported: {err}")


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(*sys.argv[1:4])
