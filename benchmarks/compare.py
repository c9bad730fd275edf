"""tfmeta against PyTorch and JAX peers tuned as their experts would, interleaved, as ratios.

1. Form search: for each learner, every form of each peer runs once (PyTorch: a loop over tasks on
   every core or on one, tasks side by side in threads, ``torch.func.vmap``, ``torch.compile``;
   JAX: the loop unrolled inside ``jit`` or ``vmap``, on every core or one; see
   benchmarks/peers/), and the fastest form of each peer is kept. A form still running after 3
   times the wall time of the fastest so far (at least 3 min: ``form_timeout``) is stopped and
   recorded as stopped (``timed_out``), not as a figure.
2. Rounds: per learner and round, tfmeta (benchmarks/throughput.py, float32 and any other
   ``--precisions``), then each peer in its fastest form, each in a fresh process. A figure is the
   median over rounds of each process's median window.

Load: each cell records the load average before and after and the cores that other programs kept
busy while it ran (the machine's busy CPU time from /proc/stat less the cell's own); a cell where
others used more than ``--max-other-cores`` is run again once, and flagged if it still is.

Every form, cell and row is one JSON line in ``--out`` (with the machine, commit and versions
first); ``--table FILE`` prints README's table from such a file.

Run:  python benchmarks/compare.py --out benchmarks/results/performance/compare.jsonl
                                   # 4 learners with peers + the others, 2 rounds: ~1 h on 2 cores
      python benchmarks/compare.py --learners protonet --rounds 3
      python benchmarks/compare.py --quick          # width 8, meta-batch 4: a smoke run (CI)
      python benchmarks/compare.py --table benchmarks/results/performance/compare.jsonl
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.path.join(HERE, "peers")
PEER_LEARNERS = ("maml", "fomaml", "protonet", "reptile")
FORMS = {  # each peer's forms (flags of benchmarks/peers/<peer>_peer.py)
    "torch": [["--tasks", "loop"], ["--tasks", "loop", "--threads", "1"],
              ["--tasks", "threads", "--threads", "1"], ["--tasks", "vmap"],
              ["--tasks", "loop", "--compile"], ["--tasks", "loop", "--threads", "1", "--compile"],
              ["--tasks", "threads", "--threads", "1", "--compile"]],
    "jax": [["--tasks", "loop"], ["--tasks", "loop", "--threads", "1"], ["--tasks", "vmap"],
            ["--tasks", "vmap", "--threads", "1"]],
}
FORM_SLOWER, FORM_MIN_SECONDS = 3.0, 180.0  # the form search's stop (form_timeout)
NAMES = {"maml": "MAML, second order", "fomaml": "first-order MAML",
         "protonet": "Prototypical Networks", "reptile": "Reptile (5 SGD steps on the support)"}


def busy_cpu_seconds() -> float:
    """CPU seconds every core of the machine has spent busy since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    me, children = (resource.getrusage(w) for w in (resource.RUSAGE_SELF,
                                                     resource.RUSAGE_CHILDREN))
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def run(command, timeout: float | None = None) -> dict:
    """One measuring process; its JSON line, with the load around it and its wall time. A process
    still running after ``timeout`` seconds is stopped: ``{"error": ..., "timed_out": True}``."""
    before = (os.getloadavg()[0], busy_cpu_seconds(), own_cpu_seconds(), time.time())
    try:
        r = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                           env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    except subprocess.TimeoutExpired:
        return {"error": f"stopped after {timeout:.0f} s", "timed_out": True,
                "seconds": round(time.time() - before[3], 1)}
    after = (os.getloadavg()[0], busy_cpu_seconds(), own_cpu_seconds(), time.time())
    if r.returncode != 0:
        lines = (r.stderr.strip() or r.stdout.strip() or "no output").splitlines()
        return {"error": lines[-1][:300]}
    result = json.loads(r.stdout.strip().splitlines()[-1])
    result["seconds"] = round(after[3] - before[3], 1)
    others = (after[1] - before[1]) - (after[2] - before[2])
    result["load"] = {"loadavg_before": round(before[0], 2), "loadavg_after": round(after[0], 2),
                      "other_cores": round(max(0.0, others) / (after[3] - before[3]), 2)}
    return result


def measured(command, max_other_cores: float) -> dict:
    """``run``, again once if other programs were busy beside it; flagged if they still were."""
    result = run(command)
    if "error" in result or result["load"]["other_cores"] <= max_other_cores:
        return result
    again = run(command)
    if "error" in again:
        return result | {"under_load": True}
    again["repeated"] = True
    again["under_load"] = again["load"]["other_cores"] > max_other_cores
    return again


def form_timeout(tried: list) -> float | None:
    """How long the form search lets a form run: ``FORM_SLOWER`` times the wall time of the fastest
    form so far (start-up, compilation and the same one window included), at least
    ``FORM_MIN_SECONDS``; none before a form has finished. A form stopped there took several
    times as long as one already measured for the same work: it is not the fastest (JAX's vmap
    of second-order MAML ran at 0.28 tasks/s against its loop's 8.5, 6 minutes a window)."""
    if not tried:
        return None
    fastest = max(tried, key=lambda t: t[0])
    return max(FORM_MIN_SECONDS, FORM_SLOWER * fastest[2])


def peer_command(peer, learner, workload, form):
    return [os.path.join(PEERS, f".venv-{peer}", "bin", "python"),
            os.path.join(PEERS, f"{peer}_peer.py"), "--algorithm", learner, *workload, *form]


def table(lines: list[dict]) -> str:
    """README's markdown table from compare.py's JSON lines."""
    env = next(x for x in lines if x["kind"] == "environment")
    rows = [x for x in lines if x["kind"] == "row"]
    peers, precisions = env["peers"], env["precisions"]
    extra = [p for p in precisions if p != "float32"]
    # the measured matmul peak (benchmarks/peak.py, before and after the cells): the highest
    peaks = [x for x in lines if x["kind"] == "peak"]
    measured_peak = {p: max(x[key] for x in peaks) if peaks else None
                     for p, key in (("float32", "float32_gflops"),
                                    ("mixed_bfloat16", "bfloat16_gflops"))}
    task_gflop = {(x["learner"], x["form"]): x["workload"]["peak_gflops"]
                  / x["flop_limit_tasks_per_second"]
                  for x in lines if x["kind"] == "cell" and x["framework"] == "tfmeta"}

    def of_limit(learner, precision, cell) -> str:
        """Percent of the nominal FLOP limit, and of the measured peak in brackets."""
        text = f"{100 * cell['fraction_of_flop_limit']:.0f}%"
        peak = measured_peak.get(precision)
        if peak and (learner, precision) in task_gflop:
            measured = cell["tasks_per_second"] * task_gflop[(learner, precision)] / peak
            text += f" ({100 * measured:.0f}%)"
        return text

    limit_header = ("of the FLOP limit (of the measured peak)" if peaks
                    else "of the FLOP limit")
    header = (["learner", "tfmeta"] + [f"tfmeta {p}" for p in extra] + peers
              + ["tfmeta / fastest peer", limit_header, "memory / leanest", "first step"])
    measured_text = (f"; measured matmul peak {measured_peak['float32']} GFLOP/s float32, "
                     f"{measured_peak['mixed_bfloat16']} bfloat16 (benchmarks/peak.py)"
                     if peaks else "")
    out = [f"{env['date']}, {env['host']}, {env['cores']} cores, commit {env['commit']}; tasks/s "
           f"(median over {env['rounds']} rounds); meta-batch {env['workload']['meta_batch']}, "
           f"Conv4 width {env['workload']['width']}; each peer's fastest form in brackets"
           + measured_text,
           "", "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in rows:
        ours = row["tfmeta"]["float32"]
        cells = [NAMES.get(row["learner"], row["learner"]), f"{ours['tasks_per_second']:.1f}"]
        for p in extra:
            x = row["tfmeta"].get(p)
            cells.append(f"{x['tasks_per_second']:.1f} ({of_limit(row['learner'], p, x)} "
                         f"of its limit)" if x else "-")
        for p in peers:
            x = row["peers"].get(p)
            cells.append(f"{x['tasks_per_second']:.1f} ({x['form']})" if x else "-")
        cells += [f"{row['speed_ratio']}x" if row["speed_ratio"] else "-",
                  of_limit(row["learner"], "float32", ours),
                  f"{row['memory_ratio']}x" if row["memory_ratio"] else "-",
                  f"{ours['first_step_seconds']} s"]
        if row["under_load"]:
            cells[0] += " (a cell measured under load)"
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def commit() -> str:
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                       cwd=HERE)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, cwd=HERE).stdout.strip()
    return (r.stdout.strip() or "unknown") + ("+changes" if dirty else "")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--learners", default="maml,fomaml,protonet,reptile,anil,metasgd,matching,"
                                          "relation,siamese,ridge,svm,snail",
                   help="every learner is measured; maml, fomaml, protonet, reptile have peers")
    p.add_argument("--peers", default="torch,jax")
    p.add_argument("--precisions", default="float32",
                   help="tfmeta's precisions (float32 first), e.g. float32,mixed_bfloat16")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--meta-batch", type=int, default=32)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--windows", type=int, default=3)
    p.add_argument("--window-steps", type=int, default=3)
    p.add_argument("--jax-tasks", default="loop,vmap",
                   help="the JAX peer's --tasks forms to try (each on every core and on one)")
    p.add_argument("--max-other-cores", type=float, default=0.25,
                   help="cores other programs may keep busy during a cell before it is repeated")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=None, help="write the JSON lines to this file")
    p.add_argument("--table", metavar="FILE", help="print the table of this JSON-lines file")
    args = p.parse_args()
    if args.table:
        with open(args.table) as f:
            print(table([json.loads(line) for line in f if line.strip()]))
        return
    if args.quick:
        args.width, args.meta_batch, args.windows, args.window_steps = 8, 4, 2, 2
    precisions = args.precisions.split(",")
    if precisions[0] != "float32":
        raise SystemExit("--precisions: float32 comes first (the ratios are float32's)")
    peers = [x for x in args.peers.split(",") if x]
    unknown = sorted(set(peers) - set(FORMS))
    if unknown:
        raise SystemExit(f"--peers: no peer {', '.join(unknown)} (torch, jax)")
    subprocess.run(["bash", os.path.join(PEERS, "setup.sh"), *peers], check=True)
    def workload_flags(windows):
        return ["--meta-batch", str(args.meta_batch), "--width", str(args.width),
                "--windows", str(windows), "--window-steps", str(args.window_steps)]

    workload, search = workload_flags(args.windows), workload_flags(1)  # search: one window
    out = open(args.out, "w") if args.out else None

    def emit(line: dict):
        print(json.dumps(line), flush=True)
        if out:
            out.write(json.dumps(line) + "\n")
            out.flush()

    versions = {}
    for peer in peers:
        python = os.path.join(PEERS, f".venv-{peer}", "bin", "python")
        versions[peer] = subprocess.run([python, "-c", f"import {peer}; print({peer}.__version__)"],
                                        capture_output=True, text=True).stdout.strip()
    emit({"kind": "environment", "date": str(datetime.date.today()), "host": platform.node(),
          "cores": os.cpu_count(), "commit": commit(), "peers": peers, "precisions": precisions,
          "rounds": args.rounds, "versions": versions,
          "workload": {"meta_batch": args.meta_batch, "width": args.width,
                       "windows": args.windows, "window_steps": args.window_steps},
          "command": " ".join(["python", "benchmarks/compare.py", *sys.argv[1:]])})

    def peak():  # the measured matmul peak, a JSON line (benchmarks/peak.py)
        r = run([sys.executable, os.path.join(HERE, "peak.py"),
                 *(["--size", "512", "--seconds", "0.2", "--windows", "1"] if args.quick else [])])
        if "error" not in r:  # with the load around it, as a cell's
            emit(r)

    peak()
    for learner in args.learners.split(","):
        learner_peers = peers if learner in PEER_LEARNERS else []
        best_forms = {}
        for peer in learner_peers:
            tried = []  # (tasks/s, form, the process's wall time)
            forms = [f for f in FORMS[peer]
                     if peer != "jax" or f[1] in args.jax_tasks.split(",")]
            for form in forms:
                r = run(peer_command(peer, learner, search, form), form_timeout(tried))
                emit({"kind": "form", "learner": learner, "peer": peer, "flags": form,
                      "seconds": r.get("seconds"),
                      **({"error": r["error"], "timed_out": r.get("timed_out", False)}
                         if "error" in r else
                         {"form": r["form"], "tasks_per_second": r["tasks_per_second"]["median"],
                          "load": r["load"]})})
                if "error" not in r:
                    tried.append((r["tasks_per_second"]["median"], form, r["seconds"]))
            if not tried:
                raise SystemExit(f"{peer} peer: every form failed for {learner}")
            best_forms[peer] = max(tried, key=lambda t: t[0])[1]
        cells: dict = {}
        for round_ in range(args.rounds):
            for precision in precisions:
                r = measured([sys.executable, os.path.join(HERE, "throughput.py"), "--one",
                              learner, "--precision", precision, *workload],
                             args.max_other_cores)
                if "error" in r:
                    raise SystemExit(f"tfmeta {learner} {precision}: {r['error']}")
                cells.setdefault(("tfmeta", precision), []).append(r)
                emit({"kind": "cell", "learner": learner, "round": round_,
                      "framework": "tfmeta", "form": precision, **r})
            for peer in learner_peers:
                r = measured(peer_command(peer, learner, workload, best_forms[peer]),
                             args.max_other_cores)
                if "error" in r:
                    raise SystemExit(f"{peer} {learner}: {r['error']}")
                cells.setdefault((peer, None), []).append(r)
                emit({"kind": "cell", "learner": learner, "round": round_, "framework": peer,
                      **r})

        def summary(runs, flop=False):
            s = {"tasks_per_second": round(statistics.median(
                r["tasks_per_second"]["median"] for r in runs), 2),
                "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
                "first_step_seconds": max(r["first_step_seconds"] for r in runs)}
            if flop:
                s["fraction_of_flop_limit"] = round(s["tasks_per_second"]
                                                    / runs[0]["flop_limit_tasks_per_second"], 3)
            else:
                s["form"] = runs[0]["form"]
            return s

        ours = {p: summary(cells[("tfmeta", p)], flop=True) for p in precisions}
        theirs = {peer: summary(cells[(peer, None)]) for peer in learner_peers}
        fastest = max((x["tasks_per_second"] for x in theirs.values()), default=None)
        leanest = min((x["peak_rss_mb"] for x in theirs.values()), default=None)
        emit({"kind": "row", "learner": learner, "tfmeta": ours, "peers": theirs,
              "speed_ratio": (round(ours["float32"]["tasks_per_second"] / fastest, 2)
                              if fastest else None),
              "memory_ratio": (round(ours["float32"]["peak_rss_mb"] / leanest, 2)
                               if leanest else None),
              "under_load": any(r.get("under_load") for runs in cells.values() for r in runs)})
    peak()
    if out:
        out.close()
        with open(args.out) as f:
            print("\n" + table([json.loads(line) for line in f if line.strip()]))


if __name__ == "__main__":
    main()
