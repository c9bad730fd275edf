"""savedmodels/README.md works as written, up to the commands that need a TF Serving binary
(docker, curl), which are replaced by what TF Serving does: load the SavedModel and run the
request's signature on the request's base64-decoded instances."""

import base64
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..")
README = os.path.join(ROOT, "savedmodels", "README.md")
FAST = "--steps 4 --episodes 10 --val-every 4 --val-episodes 2"  # instead of --steps 300


def blocks(text):
    return re.findall(r"```(bash|python)\n(.*?)```", text, flags=re.S)


def _run(args, cwd):
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def test_readme_serving_section_runs_as_written(tmp_path):
    text = open(README).read()
    found = blocks(text)
    assert len(found) >= 8
    os.makedirs(tmp_path / "examples")
    shutil.copy(os.path.join(ROOT, "examples", "make_support_folder.py"), tmp_path / "examples")
    ran = []
    for language, code in found:
        if language == "bash":
            if "docker run" in code or "curl " in code:  # needs a TF Serving binary
                continue
            for line in code.strip().splitlines():
                if line.startswith("pip install"):
                    continue  # the package under test is installed already
                r = _run(["bash", "-c", line.replace("--steps 300", FAST)], tmp_path)
                assert r.returncode == 0, f"{line}\n{r.stderr[-2000:]}"
                ran.append(line.split()[0])
                if line.startswith("saved_model_cli"):
                    assert "inputs['images']" in r.stdout and "DT_FLOAT" in r.stdout
                    for output in ("class_ids", "class_names", "logits", "probabilities"):
                        assert f"outputs['{output}']" in r.stdout
        else:
            assert "tfmeta" not in code  # what a serving client runs: no tfmeta
            r = _run([sys.executable, "-c", code], tmp_path)
            assert r.returncode == 0, f"{code}\n{r.stderr[-2000:]}"
            ran.append("python")
    assert ran.count("tfmeta") == 3 and ran.count("python") >= 5
    # what TF Serving does with request.json
    import tensorflow as tf

    body = json.loads((tmp_path / "request.json").read_text())
    model = tf.saved_model.load(str(tmp_path / "savedmodels" / "glyphs" / "1"))
    images = [base64.b64decode(row["image_bytes"]["b64"]) for row in body["instances"]]
    outputs = model.signatures[body["signature_name"]](image_bytes=tf.constant(images))
    assert outputs["class_names"].numpy()[0].decode() in {"alpha", "beta", "gamma", "delta",
                                                         "epsilon"}
    assert sorted(os.listdir(tmp_path / "savedmodels" / "glyphs" / "1")) == [
        "assets", "assets.extra", "fingerprint.pb", "labels.txt", "model.onnx", "model.tflite",
        "saved_model.pb", "variables"]


@pytest.mark.parametrize("phrase", ["docker run", "tensorflow/serving", ":predict", '"b64"',
                                    "onnxruntime", "tf.lite.Interpreter"])
def test_readme_documents_serving(phrase):
    assert phrase in open(README).read()
