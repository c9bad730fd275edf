"""Write a support folder (and query images) of new glyph classes, to try `tfmeta adapt` /
`tfmeta predict` before you have your own images.

Layout written (the one `tfmeta adapt --support` expects: one folder of images per class)::

    DIR/support/alpha/0.png ... DIR/support/epsilon/4.png
    DIR/query/alpha_0.png ...           # more images of the same classes, named by their class

The glyph classes come from a seed the built-in dataset does not use, so no run has seen them.

Run:
    python examples/make_support_folder.py demo --ways 5 --shots 5 --queries 3
"""

import argparse
import os

import tensorflow as tf

from tfmeta.data import generate_glyphs

NAMES = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
         "lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon"]


def write_png(path, image):
    with open(path, "wb") as f:
        f.write(tf.io.encode_png(image).numpy())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="folder to write support/ and query/ into")
    parser.add_argument("--ways", type=int, default=5)
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--queries", type=int, default=3)
    parser.add_argument("--seed", type=int, default=777)
    args = parser.parse_args(argv)
    if not 2 <= args.ways <= len(NAMES):
        parser.error(f"--ways must be between 2 and {len(NAMES)}")
    glyphs = generate_glyphs(num_classes=args.ways, samples_per_class=args.shots + args.queries,
                             seed=args.seed)
    for c, name in enumerate(NAMES[:args.ways]):
        images = glyphs.class_images(c)
        os.makedirs(os.path.join(args.out, "support", name), exist_ok=True)
        os.makedirs(os.path.join(args.out, "query"), exist_ok=True)
        for i, image in enumerate(images[:args.shots]):
            write_png(os.path.join(args.out, "support", name, f"{i}.png"), image)
        for i, image in enumerate(images[args.shots:]):
            write_png(os.path.join(args.out, "query", f"{name}_{i}.png"), image)
    print(f"wrote {args.ways} classes x {args.shots} support images to {args.out}/support and "
          f"{args.ways * args.queries} query images to {args.out}/query")


if __name__ == "__main__":
    main()
