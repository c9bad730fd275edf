"""Meta-train MAML on Omniglot's two "small" background archives, test on unseen characters.

The archives are Omniglot's minimal background sets (8 alphabets, 242 characters, 20 drawings
each). Classes are split by character (70 / 10 / 20 %), and each split gains its 90/180/270-degree
rotations as new classes, as in the Omniglot papers.

Run (about 15 minutes on 2 CPU cores; --steps 200 for a smoke run):
    python examples/omniglot_small.py ../shared/data/omniglot --steps 3000
"""

import argparse
import os

from tfmeta.data import DataConfig, EpisodeConfig
from tfmeta.run import RunConfig, TrainConfig, train


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("omniglot_dir", help="folder holding images_background_small{1,2}.zip")
    p.add_argument("--algorithm", default="maml")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--out", default="runs/omniglot-small")
    args = p.parse_args()
    zips = ",".join(os.path.join(args.omniglot_dir, f"images_background_small{i}.zip")
                    for i in (1, 2))
    config = RunConfig(
        algorithm=args.algorithm,
        data=DataConfig(f"zip:{zips}", image_size=28, channels=1, split=(0.7, 0.1, 0.2),
                        rotations=True),
        episode=EpisodeConfig(ways=5, shots=1, queries=15),
        width=64,
        train=TrainConfig(steps=args.steps, meta_batch=8, val_every=500, test_episodes=600))
    train(config, args.out)


if __name__ == "__main__":
    main()
