"""The examples' smoke modes run as a user would run them (a fresh process, from the repository
root)."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(args, cwd):
    """``args`` in a fresh process as a user's shell runs it (this Python's scripts on PATH); its
    standard output."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    done = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=600,
                          env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _smoke(script, tmp_path):
    """``python examples/SCRIPT --smoke --out TMP/out``; its standard output."""
    return _run([sys.executable, os.path.join(ROOT, "examples", script), "--smoke", "--out",
                 str(tmp_path / "out")], ROOT)


def test_keras_fit_example_smoke(tmp_path):
    out = _smoke("keras_fit.py", tmp_path)
    assert "validation accuracy by epoch:" in out
    assert "5-way 1-shot accuracy (as deployed)" in out
    assert (tmp_path / "out" / "log.csv").exists()


def test_keras_tuner_example_smoke(tmp_path):
    out = _smoke("keras_tuner_search.py", tmp_path)
    assert "best inner loop: inner_lr" in out
    assert "5-way 1-shot accuracy (as deployed)" in out
    assert (tmp_path / "out" / "maml_inner_loop").is_dir()  # the trials KerasTuner kept


def test_custom_folder_dataset_example_smoke(tmp_path):
    out = _smoke("custom_folder_dataset.py", tmp_path)
    assert "test classes never seen in training: 12; 5-way 1-shot accuracy" in out
    assert "new classes, 1 image each:" in out
    assert len(os.listdir(tmp_path / "out" / "demo_images")) == 60  # the folder it trained on


def test_onnx_edge_example_smoke(tmp_path):
    """The device side (onnxruntime + numpy + pillow, no TensorFlow) answers as tfmeta does."""
    out = _smoke("onnx_edge.py", tmp_path)
    assert "device answers equal tfmeta's: True" in out
    assert (tmp_path / "out" / "savedmodels" / "parts" / "1" / "model.onnx").exists()


def test_pretrained_backbone_example_smoke(tmp_path):
    out = _smoke("pretrained_backbone.py", tmp_path)
    assert "5-way 1-shot on unseen classes:" in out
    assert "embeddings of size 576" in out  # MobileNetV3Small's pooled features


def test_tf_serving_example_smoke(tmp_path):
    """The REST and gRPC clients against the stand-in server, which loads the export's newest
    version and replays its warm-up records first, as TF Serving does."""
    out = _smoke("tf_serving.py", tmp_path)
    assert "docker run --rm -p 8500:8500 -p 8501:8501" in out
    assert "warm-up requests replayed" in out and " 0 warm-up" not in out
    assert "REST: " in out and "of 8 right" in out
    assert "gRPC answers equal REST's: True" in out


def test_the_examples_that_take_a_run_work_on_a_small_one(tmp_path):
    """examples/predict_new_classes.py RUN and examples/ship_a_model.py RUN SUPPORT NAME, as
    their docstrings run them, on a tiny Prototypical Networks run (they have no --smoke: the run
    is the argument)."""

    def run(*args):
        return _run(args, tmp_path)

    examples = os.path.join(ROOT, "examples")
    run("tfmeta", "train", "--algorithm", "protonet", "--width", "8", "--steps", "4",
        "--val-every", "4", "--val-episodes", "2", "--episodes", "4", "--quiet", "--out", "run")
    out = run(sys.executable, os.path.join(examples, "predict_new_classes.py"), "run")
    assert "of 25 query images right (chance: 20%)" in out
    run(sys.executable, os.path.join(examples, "make_support_folder.py"), "demo")
    out = run(sys.executable, os.path.join(examples, "ship_a_model.py"), "run", "demo/support",
              "glyphs")
    assert "model.onnx" in out and "model.tflite" in out and "largest difference" in out
    assert "savedmodels/glyphs-fewshot/1: few-shot servable" in out
