"""The machine's measured matrix-multiply peak: the FLOP rate a large float32 (and bfloat16) matmul
reaches through TensorFlow (oneDNN) on every core, the practical limit beside the nominal one.

throughput.py's "fraction of the FLOP limit" divides by a nominal peak (``--peak-gflops``, 157
GFLOP/s: 2 Zen 4 cores x 2.45 GHz base clock x 32 fp32 FLOPs a cycle). Another kind of CPU, or
cores above their base clock, beat it: on 2026-12-08 the machine was a Zen 5 (AMD family 26,
512-bit FMAs: 64 FLOPs a cycle) and second-order MAML measured 114 % of it. This script measures
what the cores do give, at the time of the run: a square matmul of ``--size`` repeated for
``--seconds``, the best of ``--windows`` windows; compare.py runs it before and after its cells
and its table gives each learner's fraction of the measured peak too.

Run:  python benchmarks/peak.py                      # one JSON line: float32 and bfloat16 GFLOP/s
      python benchmarks/peak.py --size 512 --seconds 0.2 --windows 1   # a smoke run (CI)
"""

from __future__ import annotations

import argparse
import json
import os
import time


def gflops(dtype: str, size: int, seconds: float, windows: int) -> float:
    """Best GFLOP/s of ``windows`` windows of ``size``-square matmuls of ``dtype``."""
    import tensorflow as tf

    a = tf.random.stateless_uniform((size, size), seed=(0, 1), dtype=tf.float32)
    b = tf.random.stateless_uniform((size, size), seed=(0, 2), dtype=tf.float32)
    a, b = tf.cast(a, dtype), tf.cast(b, dtype)

    @tf.function
    def repeat(n):  # n matmuls in one call: no per-call overhead in the window
        total = tf.zeros((), tf.float32)
        for _ in tf.range(n):
            total += tf.cast(tf.linalg.matmul(a, b)[0, 0], tf.float32)
        return total

    repeat(tf.constant(2)).numpy()  # trace and warm up
    began = time.perf_counter()
    repeat(tf.constant(4)).numpy()
    per_call = max((time.perf_counter() - began) / 4, 1e-6)
    calls = tf.constant(max(1, int(seconds / per_call)))
    best = 0.0
    for _ in range(windows):
        began = time.perf_counter()
        repeat(calls).numpy()
        best = max(best, 2 * size ** 3 * int(calls) / (time.perf_counter() - began) / 1e9)
    return best


def cpu() -> dict:
    """The CPU's family and model numbers (/proc/cpuinfo; AMD family 25: Zen 3/4, 26: Zen 5) and
    whether it has AVX-512 and AVX512-BF16: these machines are not always the same kind."""
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key in ("vendor_id", "cpu family", "model", "model name") and key not in info:
                    info[key] = value
                if key == "flags" and "flags" not in info:
                    flags = value.split()
                    info["flags"] = [x for x in ("avx2", "avx512f", "avx512_bf16") if x in flags]
    except OSError:
        pass
    return info


def measure(size: int = 2048, seconds: float = 2.0, windows: int = 3) -> dict:
    """``{"kind": "peak", "float32_gflops": ..., "bfloat16_gflops": ..., ...}``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return {"kind": "peak", "float32_gflops": round(gflops("float32", size, seconds, windows), 1),
            "bfloat16_gflops": round(gflops("bfloat16", size, seconds, windows), 1),
            "size": size, "window_seconds": seconds, "windows": windows, "cores": os.cpu_count(),
            "cpu": cpu(), "time": time.strftime("%Y-%m-%d %H:%M:%S")}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--windows", type=int, default=3)
    args = p.parse_args()
    print(json.dumps(measure(args.size, args.seconds, args.windows)))


if __name__ == "__main__":
    main()
