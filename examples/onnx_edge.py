"""A few-shot classifier on an edge device with ONNX Runtime: no TensorFlow where it runs.

The device (a line-side PC, a phone, a camera box) has a small runtime and no training stack. The
work splits in two: on your workstation, tfmeta adapts a meta-trained model to the support
images of the new classes and exports `model.onnx` with `labels.txt` (verified against the Keras
model before it is written); on the device, ONNX Runtime and numpy classify images: decode,
scale to [0, 1], run, read the class name from `labels.txt`. `classify_on_device` below is all
the device needs (onnxruntime, numpy, pillow).

Run (about two minutes on 2 CPU cores; --smoke: under a minute, what CI runs):
    python examples/onnx_edge.py --out runs/edge
    python examples/onnx_edge.py --run runs/quickstart --out runs/edge   # your own run
    python examples/onnx_edge.py --smoke
"""

import argparse
import glob
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def classify_on_device(version_dir, image_paths):
    """The device side: ONNX Runtime on the exported model, numpy preprocessing, class names
    from labels.txt. Images are decoded to the model's input size and channels."""
    import onnxruntime
    from PIL import Image

    session = onnxruntime.InferenceSession(os.path.join(version_dir, "model.onnx"),
                                           providers=["CPUExecutionProvider"])
    _, height, width, channels = session.get_inputs()[0].shape
    with open(os.path.join(version_dir, "labels.txt")) as f:
        labels = f.read().split("\n")[:-1]
    mode = "L" if channels == 1 else "RGB"
    batch = np.stack([np.asarray(Image.open(path).convert(mode).resize((width, height)),
                                 np.float32).reshape(height, width, channels) / 255.0
                      for path in image_paths])
    outputs = dict(zip([o.name for o in session.get_outputs()],
                       session.run(None, {"images": batch})))
    return [labels[i] for i in outputs["class_ids"]], outputs["probabilities"].max(-1)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default=None, help="a meta-trained run (default: train a small one)")
    p.add_argument("--out", default="runs/edge")
    p.add_argument("--smoke", action="store_true", help="a tiny model and a few steps")
    args = p.parse_args()

    # 1. Workstation: a meta-trained run (here a short Prototypical Networks run on glyphs).
    import tfmeta
    import tfmeta.export
    from tfmeta.data import support_from_folder
    from tfmeta.data.files import load_image_files

    run = args.run
    if run is None:
        run = os.path.join(args.out, "run")
        steps = "10" if args.smoke else "300"
        subprocess.run(["tfmeta", "train", "--algorithm", "protonet", "--width",
                        "16" if args.smoke else "64", "--steps", steps, "--val-every", steps,
                        "--episodes", "20", "--out", run, "--quiet"], check=True)

    # 2. Workstation: the new classes' labelled images, one folder per class.
    demo = os.path.join(args.out, "demo")
    subprocess.run([sys.executable, os.path.join(HERE, "make_support_folder.py"), demo,
                    "--ways", "4", "--shots", "3", "--queries", "2"], check=True)

    # 3. Workstation: adapt to them and export SavedModel + ONNX (each verified on the support).
    learner = tfmeta.load(run)
    height, _, channels = learner.input_shape
    support = support_from_folder(os.path.join(demo, "support"), height, channels)
    images, labels, classes = learner.prepare_support(
        support.images, np.array(support.class_names)[support.labels()])
    version_dir = tfmeta.export.saved_model(learner.adapt(images, labels), classes, images,
                                            os.path.join(args.out, "savedmodels"), "parts",
                                            formats=["onnx"], fresh_process=not args.smoke)
    print(f"exported {version_dir}: {tfmeta.export.describe(version_dir)}")

    # 4. Device: copy model.onnx and labels.txt over; classify new images with ONNX Runtime.
    queries = sorted(glob.glob(os.path.join(demo, "query", "*.png")))
    names, confidence = classify_on_device(version_dir, queries)
    truth = [os.path.basename(q).rsplit("_", 1)[0] for q in queries]
    for query, name, p_max in zip(queries, names, confidence):
        print(f"{os.path.basename(query)}: {name} ({p_max:.2f})")
    from_tfmeta = learner.predict(support.images, np.array(support.class_names)[
        support.labels()], load_image_files(queries, height, channels))
    print(f"device answers equal tfmeta's: {list(from_tfmeta) == names}; "
          f"{np.mean(np.array(names) == np.array(truth)):.0%} right")


if __name__ == "__main__":
    main()
