"""Adversarial querying against standard meta-training on glyphs: the same `tfmeta train` run
twice, clean queries and queries attacked with PGD while meta-training, both then evaluated on
the same 600 test episodes, clean and under the same PGD attack (`tfmeta evaluate --attack`).

Run:  python benchmarks/adversarial.py --algorithm protonet --epsilon 0.05 --out runs/adversarial
      (about 10 minutes for ProtoNet on 2 CPU cores)
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
    p.add_argument("--epsilon", type=float, default=0.05)
    p.add_argument("--train-steps", type=int, default=3, help="PGD steps while meta-training")
    p.add_argument("--attack-steps", type=int, default=7, help="PGD steps at evaluation")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--out", default="runs/adversarial")
    args = p.parse_args()
    tfmeta = [sys.executable, "-m", "tfmeta"]
    common = ["--algorithm", args.algorithm, "--dataset", "glyphs", "--ways", "5", "--shots", "1",
              "--queries", "15", "--meta-batch", "4", "--steps", str(args.steps), "--width",
              "32", "--val-every", str(args.steps), "--episodes", "100", "--no-progress"]
    for name, extra in (("standard", []), ("adversarial", [
            "--adversarial", "pgd", "--attack-epsilon", str(args.epsilon), "--attack-steps",
            str(args.train_steps)])):
        out = os.path.join(args.out, name)
        began = time.time()
        subprocess.run(tfmeta + ["train", *common, *extra, "--out", out], check=True,
                       stdout=subprocess.DEVNULL)
        trained = time.time() - began
        subprocess.run(tfmeta + ["evaluate", "--checkpoint", out, "--episodes", "600", "--attack",
                                 "pgd", "--attack-epsilon", str(args.epsilon), "--attack-steps",
                                 str(args.attack_steps)], check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(out, "evaluation.json")) as f:
            r = json.load(f)
        print(json.dumps({
            "training": name, "clean_accuracy": round(100 * r["accuracy"], 2),
            "clean_ci95": round(100 * r["ci95"], 2),
            "robust_accuracy": round(100 * r["robust_accuracy"], 2),
            "robust_ci95": round(100 * r["robust_ci95"], 2), "attack": r["attack"],
            "train_seconds": round(trained),
            "command": " ".join(["tfmeta", "train", *common, *extra, "--out", out])}), flush=True)


if __name__ == "__main__":
    main()
