"""Pixel nearest-neighbour baseline on the glyphs test classes, on the very episodes that
``tfmeta train`` / ``tfmeta evaluate`` score (test split, episode seed 20000).

Run:  python benchmarks/glyphs_baseline.py --ways 5 --shots 1 --episodes 600
"""

import argparse

import numpy as np

from tfmeta.data import DataConfig, EpisodeConfig, EpisodeSampler, load_splits
from tfmeta.evaluation import confidence_interval


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ways", type=int, default=5)
    p.add_argument("--shots", type=int, default=1)
    p.add_argument("--queries", type=int, default=15)
    p.add_argument("--episodes", type=int, default=600)
    args = p.parse_args()
    test = load_splits(DataConfig("glyphs"))["test"]
    sampler = EpisodeSampler(test, EpisodeConfig(args.ways, args.shots, args.queries), 1, 20_000)
    accuracies = []
    for sx, sy, qx, qy in sampler.dataset(num_batches=args.episodes):
        s = sx[0].numpy().reshape(len(sy[0]), -1)
        q = qx[0].numpy().reshape(len(qy[0]), -1)
        d = ((q[:, None] - s[None]) ** 2).sum(-1)
        accuracies.append(np.mean(sy[0].numpy()[d.argmin(1)] == qy[0].numpy()))
    mean, ci = confidence_interval(accuracies)
    print(f"pixel 1-NN, glyphs {args.ways}-way {args.shots}-shot: {100 * mean:.2f}% +- "
          f"{100 * ci:.2f}% ({args.episodes} episodes)")


if __name__ == "__main__":
    main()
