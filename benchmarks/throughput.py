"""Meta-training throughput of every learner on the standard workload, one JSON line per learner.

The standard workload (issue 10): Conv4 of 64 filters with BatchNorm, 28x28x1 images, 5-way 1-shot,
15 queries per class, meta-batch 32; MAML and first-order MAML one inner SGD step; Reptile five
full-batch SGD steps on the support set; every other learner its defaults. Each learner runs in a
fresh process (so its peak memory and first-step time are its own): 3 warm-up meta-steps, then
``--windows`` windows of ``--window-steps`` meta-steps, tasks/s of each window; the line gives the
median, min and max, the first step's time (tracing), peak resident memory, and the fraction of
this machine's FLOP limit (``--peak-gflops``; the model of FLOPs per task is in ``flops_per_task``).

Run:  python benchmarks/throughput.py                         # every learner, ~15 min on 2 cores
      python benchmarks/throughput.py --algorithms maml,protonet --windows 5
      python benchmarks/throughput.py --quick                 # CI: width 8, meta-batch 4, ~1 min
      python benchmarks/throughput.py --algorithms fomaml --keras-batchnorm   # fused kernel off
      python benchmarks/throughput.py --algorithms protonet --precision mixed_bfloat16
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

from workload import add_workload_flags, tasks_per_second

# Options that make each learner's inner loop the standard workload's (the peers run the same).
WORKLOAD_OPTIONS = {
    "maml": {"inner_steps": 1, "inner_lr": 0.4},
    "fomaml": {"inner_steps": 1, "inner_lr": 0.4},
    "reptile": {"inner_steps": 5, "inner_lr": 0.4, "inner_optimizer": "sgd", "inner_batch": None,
                "test_inner_batch": None, "train_shots": None},
}
# AVX512-BF16's VDPBF16PS does two bfloat16 multiply-adds per fp32 lane where an FMA does one: the
# bfloat16 limit of these CPUs (AMD Zen 4) is twice the fp32 peak, for the matrix work oneDNN gives it
BF16_SPEEDUP = 2.0
DEFAULT_ALGORITHMS = "maml,fomaml,reptile,anil,metasgd,protonet,matching,relation,siamese,ridge,svm,snail"


def conv4_flops(width: int, image_size: int, channels: int) -> float:
    """Multiply-adds x 2 of one Conv4 forward pass (the convolutions; the rest is < 2 %)."""
    flops, size, cin = 0.0, image_size, channels
    for _ in range(4):
        flops += 2 * size * size * 9 * cin * width
        size, cin = size // 2, width
    return flops


def flops_per_task(algorithm: str, ways: int, shots: int, queries: int, width: int,
                   image_size: int, channels: int, options: dict) -> float:
    """FLOPs of one task of a meta-step, counting a backward pass as two forwards: every learner
    forwards and back-propagates its support and query images (3 passes each); an inner step adds
    3 passes over its images, and a second-order step about 3.6 more (the Hessian-vector product).
    Reptile's meta-training step is its inner loop alone (its reported loss is the last inner
    step's)."""
    support, query = ways * shots, ways * queries
    inner = options.get("inner_steps", 1)
    passes = {"maml": 3 * query + 6.6 * support * inner,
              "fomaml": 3 * query + 3 * support * inner,
              "anil": 3 * query + 3 * support,
              "metasgd": 3 * query + 6.6 * support * inner,
              "reptile": 3 * support * inner}.get(algorithm, 3 * (support + query))
    return passes * conv4_flops(width, image_size, channels)


def measure(args) -> dict:
    """One learner, in this process."""
    from tfmeta.threads import configure_threads

    threads = configure_threads(args.parallel_tasks)  # first: before TensorFlow starts
    import keras

    from tfmeta.data import EpisodeConfig, EpisodeSampler, generate_glyphs
    from tfmeta.learners import create

    episode = EpisodeConfig(args.ways, args.shots, args.queries)
    source = generate_glyphs(num_classes=100, samples_per_class=args.shots + args.queries,
                             image_size=args.image_size)
    sampler = EpisodeSampler(source, episode, args.meta_batch, seed=0)
    batches = [tuple(t.numpy() for t in b) for b in sampler.dataset(num_batches=4)]
    began = time.time()
    for _ in sampler.dataset(num_batches=args.window_steps):
        pass
    sampling_rate = args.window_steps * args.meta_batch / (time.time() - began)
    options = WORKLOAD_OPTIONS.get(args.one, {})
    keras.utils.set_random_seed(0)
    learner = create(args.one, "conv4", episode=episode,
                     input_shape=(args.image_size, args.image_size, 1), backbone_width=args.width,
                     total_steps=100_000, jit_compile=args.xla, precision=args.precision,
                     parallel_tasks=args.parallel_tasks, **options)
    if args.keras_batchnorm:
        learner.fuse_batchnorm(on=False)
    began = time.time()
    learner.meta_train_step(batches[0])["loss"].numpy()
    first_step = time.time() - began
    rates = tasks_per_second(
        lambda i: learner.meta_train_step(batches[i % 4])["loss"].numpy(), args)
    peak = args.peak_gflops * (BF16_SPEEDUP if args.precision == "mixed_bfloat16" else 1)
    limit = peak * 1e9 / flops_per_task(args.one, args.ways, args.shots, args.queries,
                                                    args.width, args.image_size, 1, options)
    median = rates["median"]
    return {"algorithm": args.one, "tasks_per_second": rates,
            "first_step_seconds": round(first_step, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "flop_limit_tasks_per_second": round(limit, 1),
            "fraction_of_flop_limit": round(median / limit, 3),
            "sampling_tasks_per_second": round(sampling_rate, 1),
            "workload": {"ways": args.ways, "shots": args.shots, "queries": args.queries,
                         "meta_batch": args.meta_batch, "width": args.width,
                         "image_size": args.image_size, "xla": args.xla, "options": options,
                         "precision": args.precision, "peak_gflops": peak,
                         "keras_batchnorm": args.keras_batchnorm,
                         "windows": args.windows, "window_steps": args.window_steps,
                         "cores": os.cpu_count(), "parallel_tasks": args.parallel_tasks,
                         "intra_op_threads": threads}}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algorithms", default=DEFAULT_ALGORITHMS)
    add_workload_flags(p)
    p.add_argument("--xla", action="store_true")
    p.add_argument("--parallel-tasks", type=int, default=2,
                   help="tasks meta-trained side by side, each on cores / N intra-op threads "
                        "(tfmeta.threads; 1: one task at a time on every core)")
    p.add_argument("--keras-batchnorm", action="store_true",
                   help="training-mode BatchNorm through Keras' own operations instead of the "
                        "fused kernel (to measure what the kernel gains)")
    p.add_argument("--peak-gflops", type=float, default=157.0,
                   help="the nominal fp32 peak (157: 2 Zen 4 cores x 2.45 GHz base clock x "
                        "32 FLOPs a cycle; another CPU kind or a higher clock beats it, "
                        "benchmarks/peak.py measures what the cores give)")
    p.add_argument("--precision", default="float32",
                   choices=("float32", "mixed_bfloat16", "mixed_float16"),
                   help="the backbone's Keras precision policy (mixed_bfloat16: its limit is "
                        f"{BF16_SPEEDUP:g}x the fp32 peak, AVX512-BF16's dot product)")
    p.add_argument("--quick", action="store_true",
                   help="width 8, meta-batch 4, 2 windows of 3 steps: checks it runs (CI)")
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one learner here
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    if args.quick:
        args.width, args.meta_batch, args.windows, args.window_steps = 8, 4, 2, 3
    if args.one:
        print(json.dumps(measure(args)), flush=True)
        return
    flags = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--quick"]
    if args.quick:
        flags += ["--width", "8", "--meta-batch", "4", "--windows", "2", "--window-steps", "3"]
    for algorithm in args.algorithms.split(","):
        r = subprocess.run([sys.executable, __file__, *flags, "--one", algorithm],
                           capture_output=True, text=True,
                           env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
        if r.returncode != 0:
            raise SystemExit(f"{algorithm}: {r.stderr.strip().splitlines()[-1]}")
        print(r.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
