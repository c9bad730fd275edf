"""README's five-minute tour runs as written, in a fresh directory and fresh processes, with
fewer steps and episodes: every command succeeds and leaves what the tour says it does."""

import json
import os
import re
import shutil
import subprocess
import sys

import tensorflow as tf

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FEWER = {"--steps 300": "--steps 4 --val-every 2 --val-episodes 2 --width 8 --episodes 6"}


def _tour():
    text = open(os.path.join(ROOT, "README.md")).read()
    section = text[text.index("## A five-minute tour"):text.index("## What the quickstart")]
    return re.findall(r"```(bash|python)\n(.*?)```", section, flags=re.S)


def _run(args, cwd, **kwargs):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900,
                          **kwargs)
    assert done.returncode == 0, f"{args}:\n{done.stdout[-1000:]}\n{done.stderr[-2000:]}"
    return done.stdout


def test_readme_tour_runs_as_written(tmp_path):
    blocks = _tour()
    assert [language for language, _ in blocks] == ["bash", "python"]
    os.makedirs(tmp_path / "examples")
    shutil.copy(os.path.join(ROOT, "examples", "make_support_folder.py"), tmp_path / "examples")
    outputs = []
    for line in blocks[0][1].strip().splitlines():
        command = line.split("#")[0].strip()
        for long, short in FEWER.items():
            command = command.replace(long, short)
        if command.startswith("tfmeta evaluate"):
            command += " --episodes 8"
        if command.startswith("python "):
            command = command.replace("python ", f"{sys.executable} ", 1)
        outputs.append(_run(command.split(), tmp_path))
    train_out, evaluate_out, _, predict_out, adapt_out, embed_out, plot_out = outputs

    run = tmp_path / "runs" / "tour"
    assert "5-way 1-shot accuracy" in train_out and "95% CI" in train_out
    assert json.loads((run / "results.json").read_text())["episodes"] == 6
    events = list((run / "tensorboard").glob("events.out.tfevents.*"))
    tags = {v.tag for e in tf.compat.v1.train.summary_iterator(str(events[0]))
            for v in e.summary.value}
    assert {"train/loss", "train/accuracy", "val/accuracy"} <= tags
    assert json.loads((run / "evaluation.json").read_text())["episodes"] == 8
    queries = sorted(os.listdir(tmp_path / "demo" / "query"))
    rows = [line.split("\t") for line in predict_out.splitlines() if "\t" in line]
    assert sorted(os.path.basename(row[0]) for row in rows) == queries  # one answer per image
    assert {row[1] for row in rows} <= set(os.listdir(tmp_path / "demo" / "support"))
    for version in ("demo/1", "demo-features/1"):
        assert (tmp_path / "savedmodels" / version / "saved_model.pb").exists()
    assert (tmp_path / "savedmodels" / "demo" / "1" / "model.onnx").exists()
    assert (run / "curves.png").stat().st_size > 10_000

    printed = _run([sys.executable, "-c", blocks[1][1]], tmp_path).strip().splitlines()
    assert re.search(r"\[b'(alpha|beta|gamma|delta|epsilon)'\]", printed[0]), printed
    assert printed[1].startswith("(1, ")  # [1, embedding size]
