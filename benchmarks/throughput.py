"""Meta-training throughput (tasks per second) of each learner on Conv4, on this machine.

The field's reference point: a naive Keras MAML runs ~10 tasks/s here on Conv4, 5-way 1-shot,
meta-batch 32. Timings drift 1.2-2x between runs on shared machines: compare learners inside one
run (they are interleaved here), as ratios.

Run:  python benchmarks/throughput.py --meta-batch 32 --width 64 --steps 5 --rounds 2
"""

import argparse
import time

import keras

from tfmeta.data import EpisodeConfig, EpisodeSampler, generate_glyphs
from tfmeta.learners import create


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algorithms", default="maml,fomaml,reptile")
    p.add_argument("--ways", type=int, default=5)
    p.add_argument("--shots", type=int, default=1)
    p.add_argument("--queries", type=int, default=15)
    p.add_argument("--meta-batch", type=int, default=32)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--steps", type=int, default=5, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    source = generate_glyphs(num_classes=200, samples_per_class=20)
    sampler = EpisodeSampler(source, EpisodeConfig(args.ways, args.shots, args.queries),
                             args.meta_batch)
    batches = list(sampler.dataset(num_batches=args.steps))
    learners = {}
    for name in args.algorithms.split(","):
        keras.utils.set_random_seed(0)
        learners[name] = create(name, "conv4", episode=sampler.episode, width=args.width,
                                total_steps=args.steps * args.rounds + 1)
        began = time.time()
        learners[name].meta_train_step(batches[0])  # trace and compile
        print(f"{name}: first step (tracing) {time.time() - began:.1f} s")
    rates = {name: [] for name in learners}
    for _ in range(args.rounds):
        for name, learner in learners.items():
            began = time.time()
            for batch in batches:
                learner.meta_train_step(batch)["loss"].numpy()
            rates[name].append(args.steps * args.meta_batch / (time.time() - began))
    for name, r in rates.items():
        print(f"{name}: {max(r):.1f} tasks/s (best of {args.rounds} rounds; Conv4 width "
              f"{args.width}, {args.ways}-way {args.shots}-shot, {args.queries} queries, "
              f"meta-batch {args.meta_batch})")


if __name__ == "__main__":
    main()
