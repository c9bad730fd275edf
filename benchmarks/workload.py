"""The standard workload's flags and timing, shared by benchmarks/throughput.py and the peers in
benchmarks/peers/ (standard library only: the peers import it from their own venvs), so that every
framework is measured on the same shapes in the same way."""

import argparse
import statistics
import time


def add_workload_flags(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Episode shape, meta-batch, Conv4 width, image size and the timing windows."""
    p.add_argument("--ways", type=int, default=5)
    p.add_argument("--shots", type=int, default=1)
    p.add_argument("--queries", type=int, default=15)
    p.add_argument("--meta-batch", type=int, default=32)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--image-size", type=int, default=28)
    p.add_argument("--windows", type=int, default=3)
    p.add_argument("--window-steps", type=int, default=7)
    return p


def tasks_per_second(step, args) -> dict:
    """Time ``step(i)`` (one meta-step that has finished when it returns): 2 warm-up steps, then
    ``args.windows`` windows of ``args.window_steps`` steps; median, min and max tasks/s."""
    for i in range(2):
        step(i + 1)
    rates = []
    for _ in range(args.windows):
        began = time.time()
        for i in range(args.window_steps):
            step(i)
        rates.append(args.window_steps * args.meta_batch / (time.time() - began))
    return {"median": round(statistics.median(rates), 2), "min": round(min(rates), 2),
            "max": round(max(rates), 2)}
