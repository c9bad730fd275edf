"""tfmeta against PyTorch and JAX on the standard workload, interleaved in one run, as ratios.

For each learner and round: tfmeta (benchmarks/throughput.py), then the PyTorch peer, then the JAX
peer (both of its forms, vmap and loop over tasks, the faster kept), each in a fresh process.
Each figure is the median over rounds of each process's median window. The peers are installed
on first use into their own venvs (benchmarks/peers/setup.sh).

Run:  python benchmarks/compare.py                          # standard workload, ~30 min on 2 cores
      python benchmarks/compare.py --learners protonet --rounds 3
      python benchmarks/compare.py --quick                  # width 8, meta-batch 4: a smoke run
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.path.join(HERE, "peers")


def run(command) -> dict:
    r = subprocess.run(command, capture_output=True, text=True,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(command)}:\n{r.stderr.strip()[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--learners", default="maml,fomaml,protonet,reptile")
    p.add_argument("--peers", default="torch,jax")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--meta-batch", type=int, default=32)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--windows", type=int, default=3)
    p.add_argument("--window-steps", type=int, default=7)
    p.add_argument("--jax-tasks", default="loop,vmap",
                   help="the JAX peer's forms to try (the faster is kept)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=None, help="also write the rows as JSON here")
    args = p.parse_args()
    if args.quick:
        args.width, args.meta_batch, args.windows, args.window_steps = 8, 4, 2, 3
    peers = [x for x in args.peers.split(",") if x]
    subprocess.run(["bash", os.path.join(PEERS, "setup.sh"), *peers], check=True)
    workload = ["--meta-batch", str(args.meta_batch), "--width", str(args.width),
                "--windows", str(args.windows), "--window-steps", str(args.window_steps)]
    rows = []
    for learner in args.learners.split(","):
        results: dict = {}
        for _ in range(args.rounds):
            results.setdefault("tfmeta", []).append(run(
                [sys.executable, os.path.join(HERE, "throughput.py"), "--one", learner,
                 *workload]))
            for peer in peers:
                python = os.path.join(PEERS, f".venv-{peer}", "bin", "python")
                script = os.path.join(PEERS, f"{peer}_peer.py")
                forms = ([["--tasks", t] for t in args.jax_tasks.split(",")] if peer == "jax"
                         else [[]])
                measured = [run([python, script, "--algorithm", learner, *workload, *form])
                            for form in forms]
                results.setdefault(peer, []).append(
                    max(measured, key=lambda m: m["tasks_per_second"]["median"]))
        row = {"learner": learner}
        for name, runs in results.items():
            row[name] = {"tasks_per_second": statistics.median(
                r["tasks_per_second"]["median"] for r in runs),
                "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
                "first_step_seconds": max(r["first_step_seconds"] for r in runs)}
        ours = row["tfmeta"]
        fastest = max((row[p]["tasks_per_second"] for p in peers), default=None)
        leanest = min((row[p]["peak_rss_mb"] for p in peers), default=None)
        row["speed_ratio"] = round(ours["tasks_per_second"] / fastest, 2) if fastest else None
        row["memory_ratio"] = round(ours["peak_rss_mb"] / leanest, 2) if leanest else None
        row["fraction_of_flop_limit"] = results["tfmeta"][-1]["fraction_of_flop_limit"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    header = ["learner", "tfmeta", *peers, "tfmeta / fastest", "FLOP limit", "memory / leanest",
              "first step (s)"]
    print(f"\n{datetime.date.today()}, {platform.node()}, {os.cpu_count()} cores; tasks/s; "
          f"meta-batch {args.meta_batch}, Conv4 width {args.width}")
    print("| " + " | ".join(header) + " |\n|" + " --- |" * len(header))
    for row in rows:
        cells = [row["learner"], f"{row['tfmeta']['tasks_per_second']:.1f}"]
        cells += [f"{row[p]['tasks_per_second']:.1f}" for p in peers]
        cells += [f"{row['speed_ratio']}x", f"{100 * row['fraction_of_flop_limit']:.0f}%",
                  f"{row['memory_ratio']}x", f"{row['tfmeta']['first_step_seconds']}"]
        print("| " + " | ".join(cells) + " |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
