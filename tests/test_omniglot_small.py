"""The omniglot-small protocol on Omniglot's small background sets (``../shared/data/omniglot``;
skipped where that folder is absent): its splits, and a one-minute smoke run of
``tfmeta benchmark omniglot-small`` through the CLI."""

import json
import os
import subprocess
import sys

import pytest

from conftest import SHARED_OMNIGLOT

pytestmark = pytest.mark.skipif(not os.path.isdir(SHARED_OMNIGLOT),
                                reason="../shared/data/omniglot absent")


def test_protocol_splits():
    from tfmeta.data import DataConfig, load_splits
    from tfmeta.data.episodes import parent_folder

    splits = load_splits(DataConfig(f"omniglot-small:{SHARED_OMNIGLOT}", rotations=True))
    alphabets = {k: {parent_folder(n) for n in v.class_names} for k, v in splits.items()}
    assert alphabets["test"] == {"Japanese_(katakana)", "Sanskrit", "Tagalog"}
    assert alphabets["train"] <= {"Balinese", "Early_Aramaic", "Greek", "Korean", "Latin"}
    assert splits["test"].num_classes == 106 and len(splits["test"].images) == 2120  # unrotated
    characters = {k: {n.split("@")[0] for n in v.class_names} for k, v in splits.items()}
    assert len(characters["train"]) + len(characters["val"]) == 136      # all of small1
    assert len(characters["val"]) == 14                                   # a fixed 10 %
    assert not characters["train"] & characters["val"]
    assert splits["train"].num_classes == 4 * len(characters["train"])    # rotations: train, val
    again = load_splits(DataConfig(f"omniglot-small:{SHARED_OMNIGLOT}"))
    assert again["val"].class_names == tuple(sorted(characters["val"]))   # the same every time


def test_missing_archives_are_one_clear_error(tmp_path):
    from tfmeta.data import DataConfig, load_splits
    from tfmeta.errors import DataError

    with pytest.raises(DataError, match="images_background_small1"):
        load_splits(DataConfig(f"omniglot-small:{tmp_path}"))


def test_benchmark_smoke_as_examples_omniglot_small_runs_it(tmp_path):
    """``python examples/omniglot_small.py DIR --smoke``, the benchmark's one-minute version
    (``tfmeta benchmark omniglot-small`` runs the same function): a tiny ProtoNet (width 8, 30
    steps, the preset's affine augmentation), every setting of the protocol evaluated and the
    JSON and Markdown reports written; accuracy above chance shows learning happened."""
    out = tmp_path / "bench"
    example = os.path.join(os.path.dirname(__file__), "..", "examples", "omniglot_small.py")
    r = subprocess.run([sys.executable, example, SHARED_OMNIGLOT, "--smoke", "--out", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "| 5-way 1-shot |" in r.stdout  # the Markdown table, printed
    report = json.loads((out / "benchmark.json").read_text())
    rows = {row["setting"]: row for row in report["settings"]}
    assert list(rows) == ["5-way 1-shot", "5-way 5-shot", "20-way 1-shot", "20-way 5-shot",
                          "20-way 1-shot, within alphabet"]
    assert all(row["episodes"] == 20 for row in rows.values())
    assert rows["5-way 5-shot"]["accuracy"] > 0.4      # chance: 0.2
    assert rows["20-way 1-shot"]["accuracy"] > 0.1     # chance: 0.05
    assert report["test_classes"] == 106
    assert "| 20-way 1-shot, within alphabet |" in (out / "benchmark.md").read_text()
    _raw_pngs_predict_as_training_saw_them(str(out))
    # --evaluate: the trained run evaluated again without training, the same episodes; a
    # learner option changes how it adapts (no transductive refinement here: the deployed
    # answers are the same), anything else is refused in one line
    again = tmp_path / "again"
    evaluate = [sys.executable, "-m", "tfmeta", "benchmark", "omniglot-small", "--evaluate",
                str(out), "--test-episodes", "20", "--out", str(again)]
    r = subprocess.run(evaluate + ["--set", "train.steps=5"], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 2 and "learner.KEY=VALUE settings only" in r.stderr, r.stderr[-2000:]
    r = subprocess.run(evaluate + ["--open-set", "5", "--set", "learner.refine_steps=0"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    evaluated = json.loads((again / "benchmark.json").read_text())
    assert evaluated["train_seconds"] is None and evaluated["evaluated_run"] == str(out)
    assert evaluated["learner_options"] == {"refine_steps": 0}
    assert "transductive_accuracy" in report["settings"][0]
    assert not any("transductive_accuracy" in row for row in evaluated["settings"])
    assert [row["accuracy"] for row in evaluated["settings"]] == [
        row["accuracy"] for row in report["settings"]]
    assert "Evaluated without training" in (again / "benchmark.md").read_text()
    # --open-set 5: every setting also with 5 unknown classes' queries, at the run's threshold
    # (the run was calibrated on validation classes after training)
    assert os.path.exists(out / "calibration.json")
    for row in evaluated["settings"]:
        o = row["open_set"]
        assert "skipped" in o or (o["unknown_ways"] == 5 and o["episodes"] == 20
                                  and {"auroc", "known_accuracy", "unknown_rejected"} <= set(o))
    assert "auroc" in evaluated["settings"][0]["open_set"]  # 5 + 5 of 106 classes
    assert "AUROC" in (again / "benchmark.md").read_text()


def _raw_pngs_predict_as_training_saw_them(run_dir):
    """``tfmeta.load(run).predict`` on raw 105x105 Omniglot PNGs as float arrays (0..1, black
    strokes on white, one channel) sees exactly the pixels the training pipeline saw."""
    import zipfile

    import numpy as np
    import tensorflow as tf

    import tfmeta
    from tfmeta.data import DataConfig, load_splits

    learner = tfmeta.load(run_dir)
    test = load_splits(DataConfig(f"omniglot-small:{SHARED_OMNIGLOT}"))["test"]
    names = test.class_names[:5]
    with zipfile.ZipFile(os.path.join(SHARED_OMNIGLOT, "images_background_small2.zip")) as z:
        files = {name: sorted(f for f in z.namelist() if f"/{name}/" in f and f.endswith(".png"))
                 for name in names}
        raw = np.stack([tf.io.decode_png(z.read(files[name][i])).numpy()
                        for name in names for i in range(3)]).astype(np.float32) / 255.0
    assert raw.shape == (15, 105, 105, 1) and set(np.unique(raw)) == {0.0, 1.0}
    seen = np.concatenate([test.class_images(c)[:3] for c in range(5)])  # sorted file order too
    np.testing.assert_array_equal(learner.preprocess(raw).numpy(), seen.astype(np.float32) / 255)
    labels = np.repeat(list(names), 3)
    support, query = [0, 3, 6, 9, 12], [i for i in range(15) if i % 3]
    from_raw = learner.predict(raw[support], labels[support], raw[query])
    from_seen = learner.predict(seen[support], labels[support], seen[query])
    np.testing.assert_array_equal(from_raw, from_seen)
    assert set(from_raw) <= set(names)


def test_unknown_benchmark_is_one_line_exit_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "tfmeta", "benchmark", "imagenet-tiny",
                        "--algorithm", "protonet", "--data-dir", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "omniglot-small" in r.stderr
    r = subprocess.run([sys.executable, "-m", "tfmeta", "benchmark", "omniglot-small",
                        "--algorithm", "protonet"], capture_output=True, text=True)
    assert r.returncode == 2 and "needs --algorithm and --data-dir" in r.stderr
