"""A pretrained ImageNet backbone under a few-shot head: the practical baseline for photographs.

For natural images (products, defects, animals) the quickest strong few-shot classifier is a
network pretrained on ImageNet with a head that learns a new classifier from each support set in
closed form. Here the backbone is `keras.applications.MobileNetV3Small` without its ImageNet
classifier, kept frozen (`freeze_backbone`), and the head is R2-D2's ridge regression
(Bertinetto et al. 2019), whose own scale and bias are meta-learned on episodes. The input
convention of the network (its `preprocess_input`) is a layer inside the model, so the exported
classifier takes images in [0, 1] like every tfmeta model.

The weights come from a local file, never a download at run time. Make one where there is
network:

    import keras
    keras.applications.MobileNetV3Small(include_top=False, weights="imagenet",
                                        input_shape=(96, 96, 3)).save_weights("mnv3s.weights.h5")

Run (RGB folders of your own classes; --smoke: random weights on glyphs, what CI runs):
    python examples/pretrained_backbone.py --weights mnv3s.weights.h5 --data folder:photos
    python examples/pretrained_backbone.py --smoke
"""

import argparse
import os

import tfmeta
import tfmeta.export
from tfmeta.data import DataConfig, EpisodeConfig
from tfmeta.run import RunConfig, TrainConfig, train


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default=None,
                   help="local .weights.h5 of MobileNetV3Small without its top (default: random)")
    p.add_argument("--data", default="glyphs", help="a dataset (folder:PATH of class folders)")
    p.add_argument("--image-size", type=int, default=96)
    p.add_argument("--out", default="runs/pretrained")
    p.add_argument("--smoke", action="store_true", help="32x32 images and a few steps")
    args = p.parse_args()
    if args.weights is None:
        print("no --weights: the backbone starts from random weights (a demonstration only)")
    size = 32 if args.smoke else args.image_size

    # 1. The run: a frozen pretrained MobileNetV3Small under a ridge-regression head.
    config = RunConfig(
        algorithm="ridge", model="keras_applications:MobileNetV3Small",
        weights=args.weights, freeze_backbone=args.weights is not None,
        data=DataConfig(dataset=args.data, image_size=size,  # glyphs are gray: repeated to RGB
                        channels=1 if args.data == "glyphs" else 3),
        episode=EpisodeConfig(ways=5, shots=1, queries=5),
        train=TrainConfig(steps=4 if args.smoke else 500, meta_batch=2 if args.smoke else 4,
                          val_every=4 if args.smoke else 100,
                          val_episodes=4 if args.smoke else 100,
                          test_episodes=10 if args.smoke else 600))

    # 2. Meta-train the head (and the backbone, without weights), test on unseen classes.
    run = os.path.join(args.out, "run")
    result = train(config, run, progress=False)
    print(f"5-way 1-shot on unseen classes: {100 * result['accuracy']:.1f}% +- "
          f"{100 * result['ci95']:.1f}%")

    # 3. Ship the features: the backbone's embeddings as a SavedModel with an `embed` signature
    # and a .keras file, for a vector search or your own Keras model (tested like every export).
    learner = tfmeta.load(run)
    version = tfmeta.export.embedding_saved_model(
        learner, export_dir=os.path.join(args.out, "savedmodels"), name="features",
        fresh_process=not args.smoke)  # also checked in a new Python process (not in --smoke)
    facts = tfmeta.export.read_metadata(version)
    print(f"embeddings of size {facts['embedding_size']} in {version}: "
          f"{tfmeta.export.describe(version)}")


if __name__ == "__main__":
    main()
