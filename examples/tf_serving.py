"""Serve a few-shot classifier with TF Serving, and ask it over REST and gRPC.

A meta-trained model becomes a service in three steps. On your machine, tfmeta adapts the model to
the labelled images of your new classes and writes `savedmodels/NAME/VERSION/` in TF Serving's
layout (verified against the Keras model, with warm-up requests TF Serving replays when it loads a
version). TF Serving serves that folder and takes up every new version `tfmeta adapt` adds. Clients
send encoded images, PNG or JPEG of any size, to the `serving_bytes` signature (decoding and
resizing happen inside the model) over REST (JSON, here with the standard library) or gRPC
(`tensorflow-serving-api`), and read back class names and probabilities.

Run (about two minutes on 2 CPU cores):
    python examples/tf_serving.py --out runs/serving            # prints the docker command
    docker run --rm -p 8500:8500 -p 8501:8501 -e MODEL_NAME=glyphs \\
        -v "$PWD/runs/serving/savedmodels/glyphs:/models/glyphs" tensorflow/serving
    python examples/tf_serving.py --out runs/serving --run runs/serving/run \\
        --rest http://localhost:8501 --grpc localhost:8500
    python examples/tf_serving.py --smoke                       # what CI runs

--smoke (and any run without --rest) answers the requests with `StandInServer` below, because
no TF Serving binary can be installed here: it loads the newest version as TF Serving does
(replaying its warm-up records), and answers REST `:predict` in row format and gRPC `Predict`
by running the request's signature. It is a stand-in for the client code to talk to, not TF
Serving; the client functions are unchanged against the real server.
"""

import argparse
import base64
import glob
import json
import os
import subprocess
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))


# The client side: what your application runs (no tfmeta, no TensorFlow for REST).

def predict_rest(server, model, image_paths):
    """REST `:predict` with base64-encoded image files, row format; the predicted class names and
    their probabilities."""
    instances = [{"image_bytes": {"b64": base64.b64encode(open(p, "rb").read()).decode()}}
                 for p in image_paths]
    body = json.dumps({"signature_name": "serving_bytes", "instances": instances}).encode()
    request = urllib.request.Request(f"{server}/v1/models/{model}:predict", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        predictions = json.load(response)["predictions"]
    return [p["class_names"] for p in predictions], [max(p["probabilities"]) for p in predictions]


def predict_grpc(address, model, image_paths):
    """gRPC `Predict` with the same images (`pip install tensorflow-serving-api`)."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = "serving_bytes"
    request.inputs["image_bytes"].CopyFrom(
        tf.make_tensor_proto([open(p, "rb").read() for p in image_paths]))
    with grpc.insecure_channel(address) as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
            request, timeout=60)
    names = [n.decode() for n in tf.make_ndarray(response.outputs["class_names"])]
    return names, tf.make_ndarray(response.outputs["probabilities"]).max(-1).tolist()


# The stand-in for TF Serving (see the docstring): REST and gRPC predict on one model folder.

class StandInServer:
    """Loads the newest version under ``model_dir`` as TF Serving does (warm-up records replayed
    first) and answers REST on ``rest_port`` and gRPC on ``grpc_port`` (0: any free port)."""

    def __init__(self, model_dir, model):
        import tensorflow as tf

        self.model = model
        versions = [d for d in os.listdir(model_dir) if d.isdigit()]
        self.version = max(versions, key=int)
        version_dir = os.path.join(model_dir, self.version)
        self.signatures = tf.saved_model.load(version_dir).signatures
        self.warmed = self._replay_warmup(version_dir)

    def _replay_warmup(self, version_dir):
        import tensorflow as tf
        from tensorflow_serving.apis import prediction_log_pb2

        path = os.path.join(version_dir, "assets.extra", "tf_serving_warmup_requests")
        replayed = 0
        for record in tf.data.TFRecordDataset(path):
            log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
            self.run(log.predict_log.request.model_spec.signature_name,
                     {k: tf.make_ndarray(v) for k, v in log.predict_log.request.inputs.items()})
            replayed += 1
        return replayed

    def run(self, signature_name, inputs):
        import tensorflow as tf

        signature = self.signatures[signature_name or "serving_default"]
        return {k: v.numpy() for k, v in signature(
            **{k: tf.constant(v) for k, v in inputs.items()}).items()}

    def start(self, rest_port=0, grpc_port=0):
        import grpc
        import numpy as np
        import tensorflow as tf
        from concurrent import futures
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

        served = self

        class Rest(BaseHTTPRequestHandler):
            def do_POST(self):
                if self.path != f"/v1/models/{served.model}:predict":
                    self.send_error(404, f"no model at {self.path}")
                    return
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                rows = body["instances"]
                inputs = {key: np.array([_decode(row[key]) for row in rows]) for key in rows[0]}
                outputs = served.run(body.get("signature_name"), inputs)
                predictions = [{k: _json(v[i]) for k, v in outputs.items()}
                               for i in range(len(rows))]
                answer = json.dumps({"predictions": predictions}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        class Grpc(prediction_service_pb2_grpc.PredictionServiceServicer):
            def Predict(self, request, context):
                outputs = served.run(request.model_spec.signature_name,
                                     {k: tf.make_ndarray(v) for k, v in request.inputs.items()})
                response = predict_pb2.PredictResponse()
                response.model_spec.name = served.model
                response.model_spec.version.value = int(served.version)
                for key, value in outputs.items():
                    response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
                return response

        self.http = ThreadingHTTPServer(("127.0.0.1", rest_port), Rest)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Grpc(), self.grpc)
        grpc_port = self.grpc.add_insecure_port(f"127.0.0.1:{grpc_port}")
        self.grpc.start()
        return f"http://127.0.0.1:{self.http.server_port}", f"127.0.0.1:{grpc_port}"

    def stop(self):
        self.http.shutdown()
        self.grpc.stop(None)


def _decode(value):
    return base64.b64decode(value["b64"]) if isinstance(value, dict) and "b64" in value else value


def _json(value):
    value = value.tolist() if hasattr(value, "tolist") else value
    return value.decode() if isinstance(value, bytes) else value


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default=None, help="a meta-trained run (default: train a small one)")
    p.add_argument("--out", default="runs/serving")
    p.add_argument("--name", default="glyphs", help="the served model's name")
    p.add_argument("--rest", default=None, help="a running TF Serving's REST address, "
                   "e.g. http://localhost:8501 (default: the stand-in server)")
    p.add_argument("--grpc", default=None, help="its gRPC address, e.g. localhost:8500")
    p.add_argument("--smoke", action="store_true", help="a tiny model and a few steps")
    args = p.parse_args()

    # 1. A meta-trained run (here a short Prototypical Networks run on glyphs).
    run = args.run
    if run is None:
        run = os.path.join(args.out, "run")
        steps = "10" if args.smoke else "300"
        subprocess.run(["tfmeta", "train", "--algorithm", "protonet", "--width",
                        "16" if args.smoke else "64", "--steps", steps, "--val-every", steps,
                        "--episodes", "20", "--out", run, "--quiet"], check=True)

    # 2. The new classes: one folder of labelled images per class, and images to classify.
    demo = os.path.join(args.out, "demo")
    if not os.path.isdir(demo):
        subprocess.run([sys.executable, os.path.join(HERE, "make_support_folder.py"), demo,
                        "--ways", "4", "--shots", "3", "--queries", "2"], check=True)

    # 3. Adapt and export: savedmodels/NAME/VERSION/, a new version each time (TF Serving takes
    #    up the newest). Only when no server is running yet: a running one serves what is there.
    model_dir = os.path.join(args.out, "savedmodels", args.name)
    if args.rest is None:
        subprocess.run(["tfmeta", "adapt", "--checkpoint", run, "--support",
                        os.path.join(demo, "support"), "--name", args.name, "--export-dir",
                        os.path.join(args.out, "savedmodels")], check=True)
        print("serve it with TF Serving:\n  docker run --rm -p 8500:8500 -p 8501:8501 -v "
              f"\"$PWD/{model_dir}:/models/{args.name}\" -e MODEL_NAME={args.name} "
              "tensorflow/serving")

    # 4. Ask the server: REST, then gRPC (the stand-in when no server was given).
    stand_in = None
    rest, grpc_address = args.rest, args.grpc
    if rest is None:
        stand_in = StandInServer(model_dir, args.name)
        rest, grpc_address = stand_in.start()
        print(f"stand-in server (not TF Serving) on version {stand_in.version}, "
              f"{stand_in.warmed} warm-up requests replayed")
    queries = sorted(glob.glob(os.path.join(demo, "query", "*.png")))
    truth = [os.path.basename(q).rsplit("_", 1)[0] for q in queries]
    try:
        names, confidence = predict_rest(rest, args.name, queries)
        for query, name, p_max in zip(queries, names, confidence):
            print(f"{os.path.basename(query)}: {name} ({p_max:.2f})")
        right = sum(n == t for n, t in zip(names, truth))
        print(f"REST: {right} of {len(queries)} right")
        if grpc_address:
            grpc_names, _ = predict_grpc(grpc_address, args.name, queries)
            print(f"gRPC answers equal REST's: {grpc_names == names}")
    finally:
        if stand_in is not None:
            stand_in.stop()


if __name__ == "__main__":
    main()
