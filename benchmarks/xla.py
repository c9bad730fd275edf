"""XLA or not: the first meta-step (tracing + compiling) and the second (running) of one learner
on the standard workload's shapes (Conv4, 28x28x1, 5-way 1-shot, 15 queries), with and without
``jit_compile``, in one process.

Run:  python benchmarks/xla.py --algorithm fomaml --meta-batch 8 --width 64
"""

import argparse
import json
import time


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algorithm", default="fomaml")
    p.add_argument("--meta-batch", type=int, default=8)
    p.add_argument("--width", type=int, default=64)
    args = p.parse_args()

    import keras

    from tfmeta.data import EpisodeConfig, EpisodeSampler, generate_glyphs
    from tfmeta.learners import create

    episode = EpisodeConfig(5, 1, 15)
    source = generate_glyphs(num_classes=50, samples_per_class=16, image_size=28)
    batch = [t.numpy() for t in next(iter(
        EpisodeSampler(source, episode, meta_batch=args.meta_batch, seed=4).dataset()))]
    for xla in (False, True):
        keras.utils.set_random_seed(0)
        learner = create(args.algorithm, "conv4", episode=episode, backbone_width=args.width,
                         jit_compile=xla)
        seconds = []
        for _ in range(2):
            began = time.time()
            learner.meta_train_step(batch)["loss"].numpy()
            seconds.append(time.time() - began)
        print(json.dumps({"algorithm": args.algorithm, "xla": xla, "meta_batch": args.meta_batch,
                          "width": args.width, "first_step_seconds": round(seconds[0], 1),
                          "step_seconds": round(seconds[1], 2),
                          "tasks_per_second": round(args.meta_batch / seconds[1], 1)}),
              flush=True)


if __name__ == "__main__":
    main()
