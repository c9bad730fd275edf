"""Kill soak: `tfmeta train` killed with SIGKILL at random moments (during start-up, meta-steps
and checkpoint writes: a checkpoint is written every step), KILLS times in a row, each time
restarted with the same command; then run to the end and compared with an uninterrupted run of
the same command. Prints one JSON line: kills, resumes that found a checkpoint, steps reached per
restart, and the largest difference of the final weights and optimizer state.

Run:  python benchmarks/kill_soak.py --kills 50 --out runs/soak      (about 10 minutes, 2 cores)
"""

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time


def command(out, steps):
    return [sys.executable, "-m", "tfmeta", "train", "--algorithm", "protonet", "--dataset",
            "glyphs", "--width", "8", "--meta-batch", "2", "--steps", str(steps),
            "--checkpoint-every", "1", "--val-every", str(steps), "--val-episodes", "4",
            "--episodes", "20", "--deterministic", "--no-progress", "--out", out]


def latest_step(out):
    import tensorflow as tf

    path = tf.train.latest_checkpoint(os.path.join(out, "checkpoints", "latest"))
    if path is None:
        return 0
    return int(tf.train.load_checkpoint(path).get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE"))


def state(out):
    import tensorflow as tf

    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(
        os.path.join(out, "checkpoints", "latest")))
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if "CHECKPOINTABLE_OBJECT_GRAPH" not in k}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=50)
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--min-delay", type=float, default=1.0, help="seconds after a start")
    p.add_argument("--max-delay", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/soak")
    args = p.parse_args()
    import numpy as np

    rng = random.Random(args.seed)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    reference, soak = os.path.join(args.out, "reference"), os.path.join(args.out, "killed")
    shutil.rmtree(args.out, ignore_errors=True)
    began = time.time()
    subprocess.run(command(reference, args.steps), env=env, check=True, stdout=subprocess.DEVNULL)
    reference_seconds = time.time() - began
    reached, kills, failed_starts = [], 0, 0
    while kills < args.kills:
        process = subprocess.Popen(command(soak, args.steps), env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            process.wait(timeout=rng.uniform(args.min_delay, args.max_delay))
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills += 1
            reached.append(latest_step(soak))
            continue
        if process.returncode != 0:  # a start that failed after a kill: the bug this hunts
            failed_starts += 1
            print(process.stderr.read()[-2000:], file=sys.stderr)
            if failed_starts > 3:
                break
        else:
            break  # finished before all kills: raise --steps
    final = subprocess.run(command(soak, args.steps), env=env, capture_output=True, text=True)
    a, b = state(reference), state(soak)
    difference = max(float(np.max(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64))))
                     for k in a if np.issubdtype(a[k].dtype, np.number))
    print(json.dumps({
        "kills": kills, "failed_starts": failed_starts, "final_exit_code": final.returncode,
        "steps": args.steps, "checkpoint_step_after_each_kill": reached,
        "same_keys": sorted(a) == sorted(b), "largest_state_difference": difference,
        "reference_results": json.load(open(os.path.join(reference, "results.json")))["accuracy"],
        "killed_results": json.load(open(os.path.join(soak, "results.json")))["accuracy"],
        "reference_seconds": round(reference_seconds), "total_seconds": round(time.time() - began),
        "command": " ".join(["tfmeta"] + command(soak, args.steps)[3:])}))


if __name__ == "__main__":
    main()
