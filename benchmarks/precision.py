"""Mixed precision against float32 on glyphs: the same `tfmeta train` run (same seed, classes and
episodes) in each precision, with test accuracy +- 95 % CI over 600 episodes and the wall time.

Run:  python benchmarks/precision.py --algorithm protonet --steps 300 --out runs/precision
      (about 5 minutes per precision for ProtoNet on 2 CPU cores)
"""

import argparse
import json
import os
import subprocess
import sys
import time


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algorithm", default="protonet")
    p.add_argument("--precisions", default="float32,mixed_bfloat16,mixed_float16")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--meta-batch", type=int, default=4)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--out", default="runs/precision")
    args = p.parse_args()
    rows = []
    for precision in args.precisions.split(","):
        out = os.path.join(args.out, f"{args.algorithm}-{precision}")
        command = [sys.executable, "-m", "tfmeta", "train", "--algorithm", args.algorithm,
                   "--dataset", "glyphs", "--ways", "5", "--shots", "1", "--queries", "15",
                   "--meta-batch", str(args.meta_batch), "--steps", str(args.steps),
                   "--width", str(args.width), "--val-every", str(args.steps), "--episodes",
                   "600", "--precision", precision, "--no-progress", "--out", out]
        began = time.time()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(out, "results.json")) as f:
            result = json.load(f)
        rows.append({"precision": precision, "accuracy": round(100 * result["accuracy"], 2),
                     "ci95": round(100 * result["ci95"], 2),
                     "wall_seconds": round(time.time() - began),
                     "command": " ".join(["tfmeta"] + command[3:])})
        print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main()
