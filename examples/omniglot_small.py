"""The omniglot-small benchmark from Python: meta-train a learner on Omniglot's small background set
1, keep the best checkpoint by validation, and evaluate it on the characters of the three
alphabets only set 2 has, in every setting of the protocol (5/20-way, 1/5-shot, within one
alphabet). The same as ``tfmeta benchmark omniglot-small``.

Run (the preset's recipe when tfmeta has one for the learner; --smoke: about a minute):
    python examples/omniglot_small.py ../shared/data/omniglot --algorithm protonet
    python examples/omniglot_small.py ../shared/data/omniglot --smoke
"""

import argparse

from tfmeta.benchmark import markdown, run_benchmark


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("omniglot_dir", help="folder holding images_background_small{1,2}.zip")
    p.add_argument("--algorithm", default="protonet")
    p.add_argument("--out", default="runs/omniglot_small")
    p.add_argument("--smoke", action="store_true", help="a tiny model, 30 steps, 20 episodes")
    args = p.parse_args()
    settings = ["width=8", "train.steps=30", "train.val_every=15", "train_ways=10",
                "train.pretrain_steps=0"] if args.smoke else []
    report = run_benchmark("omniglot-small", args.algorithm, args.omniglot_dir, args.out,
                           settings=settings, episodes=20 if args.smoke else None)
    print(markdown(report))


if __name__ == "__main__":
    main()
