"""Every learner on glyphs, 5-way 1-shot and 5-shot: mean accuracy +- 95% CI over 600 test episodes,
as deployed (what `adapt()` and exports answer) and, for the optimisation-based learners,
transductive (query-batch BatchNorm, as their papers evaluate).

Each row is one `tfmeta train` run (the command is printed beside it) on the same class split and the
same test episodes. The default budget is small (it fits a 2-core CPU in about an hour for all
learners), so the figures compare learners at equal, short training, not at convergence.

Run:  python benchmarks/glyphs_table.py --steps 500 --out runs/table
"""

import argparse
import os
import time

from tfmeta.data import DataConfig, EpisodeConfig
from tfmeta.files import write_json
from tfmeta.learners import ALGORITHMS
from tfmeta.run import RunConfig, TrainConfig, train


def command(algorithm, shots, args):
    flags = (f"--algorithm {algorithm} --dataset glyphs --ways 5 --shots {shots} --queries 15 "
             f"--meta-batch {args.meta_batch} --steps {args.steps} --width {args.width} "
             f"--val-every {args.steps} --episodes 600")
    return f"tfmeta train {flags} --out {args.out}/{algorithm}-{shots}shot"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algorithms", default=",".join(ALGORITHMS))
    p.add_argument("--shots", default="1,5")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--meta-batch", type=int, default=4)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--out", default="runs/table")
    args = p.parse_args()
    rows = []
    for algorithm in args.algorithms.split(","):
        for shots in [int(s) for s in args.shots.split(",")]:
            config = RunConfig(
                algorithm=algorithm, data=DataConfig("glyphs"), episode=EpisodeConfig(5, shots, 15),
                width=args.width,
                train=TrainConfig(steps=args.steps, meta_batch=args.meta_batch,
                                  val_every=args.steps, test_episodes=600))
            began = time.time()
            result = train(config, os.path.join(args.out, f"{algorithm}-{shots}shot"),
                           progress=False, log=lambda *_: None)
            rows.append(dict(algorithm=algorithm, shots=shots, accuracy=result["accuracy"],
                             ci95=result["ci95"],
                             transductive_accuracy=result.get("transductive_accuracy"),
                             transductive_ci95=result.get("transductive_ci95"),
                             seconds=round(time.time() - began),
                             command=command(algorithm, shots, args)))
            transductive = ("" if result.get("transductive_accuracy") is None else
                            f"  transductive {100 * result['transductive_accuracy']:.2f} +- "
                            f"{100 * result['transductive_ci95']:.2f}")
            print(f"{algorithm:9s} {shots}-shot  {100 * result['accuracy']:.2f} +- "
                  f"{100 * result['ci95']:.2f}{transductive}  ({rows[-1]['seconds']} s)",
                  flush=True)
            write_json(rows, os.path.join(args.out, "table.json"))  # kept after each row


if __name__ == "__main__":
    main()
