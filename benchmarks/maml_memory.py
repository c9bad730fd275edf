"""Second-order MAML's memory and time against inner steps, with and without recomputation of the
inner loop (``learner.recompute_inner``, gradient checkpointing), each setting in a fresh process.

Memory, two figures: ``step_tensor_mb``, the peak of the tensors the meta-step holds at once
(TensorFlow's own count, ``tf.config.experimental.get_memory_info``, from its BFC allocator, which
this script turns on for the CPU with ``TF_CPU_ALLOCATOR_USE_BFC``; reset after a warm-up step),
what recomputation is meant to bound; and ``peak_rss_mb``, the whole process's peak resident
memory (TensorFlow, the data, and the traced graph, which grows with the unrolled inner steps).
Time is the median of ``--steps`` meta-steps after the warm-up step.

Run:  python benchmarks/maml_memory.py                      # 1 and 10 inner steps, ~10 min
      python benchmarks/maml_memory.py --inner-steps 1,5,10 --meta-batch 8
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time




def measure(inner_steps: int, recompute: bool, args) -> dict:
    import numpy as np

    from tfmeta.data import EpisodeConfig
    from tfmeta.learners import create

    rng = np.random.default_rng(0)
    b, n, q = args.meta_batch, 5, 15
    batch = (rng.random((b, n, 28, 28, 1), np.float32), np.tile(np.arange(n), (b, 1)),
             rng.random((b, n * q, 28, 28, 1), np.float32), np.tile(np.arange(n).repeat(q), (b, 1)))
    learner = create("maml", "conv4", episode=EpisodeConfig(n, 1, q), backbone_width=args.width,
                     inner_steps=inner_steps, recompute_inner=recompute)
    import tensorflow as tf

    learner.meta_train_step(batch)["loss"].numpy()  # traces and optimises the graph
    tf.config.experimental.reset_memory_stats("CPU:0")
    before = tf.config.experimental.get_memory_info("CPU:0")["current"]
    times = []
    for _ in range(args.steps):
        began = time.time()
        learner.meta_train_step(batch)["loss"].numpy()
        times.append(time.time() - began)
    return {"inner_steps": inner_steps, "recompute_inner": recompute,
            "step_tensor_mb": round(
                (tf.config.experimental.get_memory_info("CPU:0")["peak"] - before) / 2**20, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "seconds_per_meta_step": round(statistics.median(times), 3),
            "seconds_per_inner_step": round(statistics.median(times) / inner_steps, 3),
            "meta_batch": b, "width": args.width}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--inner-steps", default="1,10")
    p.add_argument("--meta-batch", type=int, default=32)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: "STEPS,RECOMPUTE"
    args = p.parse_args()
    if args.one:
        steps, recompute = args.one.split(",")
        print(json.dumps(measure(int(steps), recompute == "1", args)), flush=True)
        return
    for steps in args.inner_steps.split(","):
        for recompute in ("0", "1"):
            r = subprocess.run([sys.executable, __file__, "--one", f"{steps},{recompute}",
                                "--meta-batch", str(args.meta_batch), "--width", str(args.width),
                                "--steps", str(args.steps)], capture_output=True, text=True,
                               env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
                                        TF_CPU_ALLOCATOR_USE_BFC="true"))
            if r.returncode != 0:
                raise SystemExit(r.stderr.strip()[-2000:])
            print(r.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
