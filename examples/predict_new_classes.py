"""Recognise new classes from a few labelled images with a meta-trained run, in Python.

Given a run directory (e.g. from `tfmeta quickstart`) this draws a few glyph classes the run never
saw, uses one image per class as the support set and classifies the rest. Replace the arrays with
your own images (numpy, any size; uint8 or floats in [0, 1]).

Run:
    tfmeta quickstart && python examples/predict_new_classes.py runs/quickstart
"""

import sys

import numpy as np

import tfmeta
from tfmeta.data import generate_glyphs


def main(run_dir):
    learner = tfmeta.load(run_dir)
    new = generate_glyphs(num_classes=5, samples_per_class=6, seed=12345)  # unseen classes
    names = np.array(["ka", "ki", "ku", "ke", "ko"])
    support = np.stack([new.class_images(c)[0] for c in range(5)])
    query = np.concatenate([new.class_images(c)[1:] for c in range(5)])
    truth = np.repeat(names, 5)
    predicted = learner.predict(support, names, query)
    print(f"{np.mean(predicted == truth):.0%} of {len(query)} query images right "
          f"(chance: 20%)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/quickstart")
