"""Meta-learning on your own images: a folder with one subfolder per class.

Most teams start with their own pictures, not a benchmark: a few hundred classes (part numbers,
defect types, species), some images each, in a folder per class. tfmeta reads that layout
directly (`folder:PATH`, or `zip:PATH` for the same in an archive), resizes every image to one
size, splits the *classes* into training, validation and test classes, and meta-trains on
episodes of training classes only. The accuracy it reports is on test classes the model never
saw: how well it will do on the next new class you give it a handful of images of.

Here the folder is written first from generated glyph classes (PNG files of mixed sizes, as real
collections are); point `--data` at yours instead.

Run (about three minutes on 2 CPU cores; --smoke: under a minute, what CI runs):
    python examples/custom_folder_dataset.py --out runs/my_folder
    python examples/custom_folder_dataset.py --data /path/to/class_folders --out runs/mine
    python examples/custom_folder_dataset.py --smoke
"""

import argparse
import os

import numpy as np
import tensorflow as tf

import tfmeta
from tfmeta.data import DataConfig, EpisodeConfig, generate_glyphs
from tfmeta.run import RunConfig, TrainConfig, train


def write_class_folders(root, classes, images_per_class, seed=5):
    """A stand-in for your data: ``root/class_NNN/K.png``, images of 28 to 40 pixels a side."""
    glyphs = generate_glyphs(num_classes=classes, samples_per_class=images_per_class, seed=seed)
    rng = np.random.default_rng(seed)
    for c in range(classes):
        folder = os.path.join(root, f"class_{c:03d}")
        os.makedirs(folder, exist_ok=True)
        for k, image in enumerate(glyphs.class_images(c)):
            size = int(rng.integers(28, 41))
            resized = tf.cast(tf.image.resize(image, (size, size)), tf.uint8)
            with open(os.path.join(folder, f"{k}.png"), "wb") as f:
                f.write(tf.io.encode_png(resized).numpy())


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="your folder of class folders (default: write "
                                                "a demo one under --out)")
    p.add_argument("--out", default="runs/my_folder")
    p.add_argument("--smoke", action="store_true", help="a tiny model and a few steps")
    args = p.parse_args()

    # 1. The data: one folder per class. Without --data, write a demo folder of 60 classes.
    data = args.data
    if data is None:
        data = os.path.join(args.out, "demo_images")
        write_class_folders(data, classes=60, images_per_class=10)

    # 2. The run, as code: Prototypical Networks, 5-way 1-shot, classes split 60/20/20.
    config = RunConfig(
        algorithm="protonet", width=16 if args.smoke else 64,
        data=DataConfig(dataset=f"folder:{data}", image_size=28, channels=1,
                        split=(0.6, 0.2, 0.2)),
        episode=EpisodeConfig(ways=5, shots=1, queries=5),
        train=TrainConfig(steps=20 if args.smoke else 600, meta_batch=4, val_every=10 if
                          args.smoke else 100, val_episodes=10 if args.smoke else 100,
                          test_episodes=50 if args.smoke else 600))

    # 3. Meta-train, keep the best checkpoint by validation, test on unseen classes.
    result = train(config, os.path.join(args.out, "run"), progress=False)
    print(f"test classes never seen in training: {result['classes']}; "
          f"5-way 1-shot accuracy {100 * result['accuracy']:.1f}% +- "
          f"{100 * result['ci95']:.1f}%")

    # 4. Use it: one labelled image of each of 3 new classes, then classify more of them.
    learner = tfmeta.load(os.path.join(args.out, "run"))
    new = generate_glyphs(num_classes=3, samples_per_class=4, seed=99)
    support = np.stack([new.class_images(c)[0] for c in range(3)])
    queries = np.concatenate([new.class_images(c)[1:] for c in range(3)])
    truth = np.repeat(["bolt", "nut", "washer"], 3)
    predicted = learner.predict(support, np.array(["bolt", "nut", "washer"]), queries)
    print(f"new classes, 1 image each: {np.mean(predicted == truth):.0%} of "
          f"{len(truth)} query images right ({', '.join(predicted)})")


if __name__ == "__main__":
    main()
