"""``tfmeta`` command line: train, evaluate, predict, quickstart, adapt, export, export-fewshot.

Bad flags, paths or data give one line ``tfmeta: error: ...`` on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys

QUICKSTART = dict(algorithm="maml", dataset="glyphs", ways=5, shots=1, queries=15, meta_batch=8,
                  steps=1000, inner_steps=1, inner_lr=0.4, width=32, out="runs/quickstart")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one clear line, exit code 2
        self.exit(2, f"tfmeta: error: {message}\n")


def _positive(value):
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return number


def _add_task_flags(p, defaults=True):
    d = (lambda v: v) if defaults else (lambda v: None)
    p.add_argument("--dataset", default=d("glyphs"),
                   help="glyphs | omniglot | folder:PATH | zip:PATH | tfds:NAME")
    p.add_argument("--ways", type=_positive, default=d(5))
    p.add_argument("--shots", type=_positive, default=d(1))
    p.add_argument("--queries", type=_positive, default=d(15))
    p.add_argument("--meta-batch", type=_positive, default=d(4))
    p.add_argument("--image-size", type=_positive, default=d(28))
    p.add_argument("--channels", type=int, choices=(1, 3), default=d(1))
    p.add_argument("--seed", type=int, default=d(0))


def _add_train_flags(p):
    from tfmeta.learners import ALGORITHMS

    p.add_argument("--algorithm", default="maml", choices=sorted(ALGORITHMS))
    _add_task_flags(p)
    p.add_argument("--train-ways", type=_positive, default=None,
                   help="ways of training episodes (metric learners; default: --ways)")
    p.add_argument("--steps", type=_positive, default=2000, help="meta-iterations")
    p.add_argument("--inner-steps", type=_positive, default=None)
    p.add_argument("--test-inner-steps", type=_positive, default=None)
    p.add_argument("--inner-lr", type=float, default=None)
    p.add_argument("--outer-lr", type=float, default=None,
                   help="outer optimizer's learning rate (default: the learner's, Adam 1e-3)")
    p.add_argument("--model", default="conv4", choices=("conv4", "resnet12"), help="backbone")
    p.add_argument("--width", type=_positive, default=64,
                   help="filters per layer (conv4) or of the first block (resnet12)")
    p.add_argument("--rotations", action="store_true", help="add 90/180/270 rotations as classes")
    p.add_argument("--fce", action="store_true", help="matching: full context embeddings")
    p.add_argument("--val-every", type=_positive, default=250)
    p.add_argument("--val-episodes", type=_positive, default=100)
    p.add_argument("--episodes", type=_positive, default=600, help="test episodes")
    p.add_argument("--checkpoint-every", type=_positive, default=100)
    p.add_argument("--xla", action="store_true", help="compile steps with XLA")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any setting of the run, repeatable: learner.OPTION=VALUE (every option "
                        "of the learner, e.g. learner.epsilon=0.5), train.X, episode.X, data.X")
    p.add_argument("--out", default="runs/latest", help="run directory")
    p.add_argument("--no-progress", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tfmeta", description="Few-shot meta-learning for TensorFlow / Keras.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("train", help="meta-train, then evaluate on test classes")
    _add_train_flags(p)

    p = sub.add_parser("quickstart", help="meta-train MAML on the built-in glyphs (~5 min on CPU)")
    p.add_argument("--out", default=QUICKSTART["out"])
    p.add_argument("--steps", type=_positive, default=QUICKSTART["steps"])
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("evaluate", help="evaluate a run on its test classes (600+ episodes)")
    p.add_argument("--checkpoint", required=True, help="run directory")
    p.add_argument("--episodes", type=_positive, default=600)
    _add_task_flags(p, defaults=False)
    p.add_argument("--out", default=None, help="JSON result file (default: RUN/evaluation.json)")

    p = sub.add_parser("predict", help="classify query images given a support folder")
    p.add_argument("--checkpoint", required=True, help="run directory")
    p.add_argument("--support", required=True, help="folder with one subfolder of images per class")
    p.add_argument("--query", required=True, help="folder (or one file) of images to classify")
    p.add_argument("--out", default=None, help="JSON file for the predictions")

    formats = ("savedmodel", "onnx", "tflite", "all")
    p = sub.add_parser("adapt", help="adapt a run to a support folder and export it for serving")
    p.add_argument("--checkpoint", required=True, help="run directory")
    p.add_argument("--support", required=True, help="folder with one subfolder of images per class")
    p.add_argument("--name", required=True, help="model name: writes EXPORT_DIR/NAME/<version>")
    p.add_argument("--export-dir", default="savedmodels")
    p.add_argument("--format", default="savedmodel", choices=formats,
                   help="besides the SavedModel: onnx, tflite or all")
    p.add_argument("--resize", action="store_true",
                   help="accept support images of different sizes (each is resized)")

    p = sub.add_parser("export", help="convert an exported version to ONNX or TFLite")
    p.add_argument("--model", required=True, help="version folder, e.g. savedmodels/NAME/1")
    p.add_argument("--format", required=True, choices=formats[1:])

    p = sub.add_parser("export-fewshot",
                       help="export a servable that adapts to the support set of each request")
    p.add_argument("--checkpoint", required=True, help="run directory")
    p.add_argument("--name", required=True, help="model name: writes EXPORT_DIR/NAME/<version>")
    p.add_argument("--export-dir", default="savedmodels")
    p.add_argument("--format", default="savedmodel", choices=formats)
    return parser


def _run_config(args):
    from tfmeta.data import DataConfig, EpisodeConfig
    from tfmeta.run import RunConfig, TrainConfig

    if args.fce and args.algorithm != "matching":
        raise ValueError("--fce is an option of --algorithm matching")
    learner = {"inner_steps": args.inner_steps, "inner_lr": args.inner_lr,
               "test_inner_steps": args.test_inner_steps, "fce": args.fce or None}
    config = RunConfig(
        algorithm=args.algorithm,
        data=DataConfig(args.dataset, args.image_size, args.channels, rotations=args.rotations),
        episode=EpisodeConfig(args.ways, args.shots, args.queries), train_ways=args.train_ways,
        model=args.model,
        width=args.width,
        learner={k: v for k, v in learner.items() if v is not None},
        train=TrainConfig(steps=args.steps, meta_batch=args.meta_batch, outer_lr=args.outer_lr,
                          val_every=args.val_every, val_episodes=args.val_episodes,
                          test_episodes=args.episodes, checkpoint_every=args.checkpoint_every,
                          seed=args.seed, jit_compile=args.xla))
    return config.with_settings(args.set).validate()


def _train(args):
    from tfmeta.run import train

    train(_run_config(args), args.out, progress=not args.no_progress)


def _quickstart(args):
    import time

    from tfmeta.run import train

    q = dict(QUICKSTART, out=args.out, steps=args.steps)
    argv = ["train"] + [f"--{k.replace('_', '-')}={v}" for k, v in q.items()] + [
        "--val-every=500", "--checkpoint-every=250",
        # On this short budget the paper's step (alpha 0.4 on sum/shots: 2.0 on the mean loss)
        # learns too slowly (0.30 -> 0.37 in 300 steps of meta-batch 4); alpha 0.4 on the mean
        # loss learns (0.51 -> 0.74).
        "--set=learner.inner_reduction=mean"] + (["--no-progress"] if args.no_progress else [])
    began = time.time()
    train(_run_config(build_parser().parse_args(argv)), args.out, progress=not args.no_progress)
    print(f"quickstart finished in {time.time() - began:.0f} s; run saved in {args.out}\n"
          f"next: tfmeta evaluate --checkpoint {args.out}   |   tfmeta predict --checkpoint "
          f"{args.out} --support SUPPORT_DIR --query QUERY_DIR")


def _evaluate(args):
    import dataclasses

    from tfmeta.data import EpisodeConfig, EpisodeSampler, load_splits
    from tfmeta.evaluation import evaluate, format_result, write_result
    from tfmeta.run import load, load_config

    config = load_config(args.checkpoint)
    data = dataclasses.replace(config.data, **{k: v for k, v in dict(
        dataset=args.dataset, image_size=args.image_size, channels=args.channels).items()
        if v is not None})
    e = config.episode
    episode = EpisodeConfig(args.ways or e.ways, args.shots or e.shots, args.queries or e.queries)
    learner = load(args.checkpoint)
    test = load_splits(data)["test"]
    sampler = EpisodeSampler(test, episode, args.meta_batch or config.train.meta_batch,
                             20_000 if args.seed is None else args.seed, "test")
    result = evaluate(learner, sampler, args.episodes)
    result.update(algorithm=config.algorithm, dataset=data.dataset)
    out = args.out or os.path.join(args.checkpoint, "evaluation.json")
    write_result(result, out)
    print(format_result(result))
    print(f"written to {out}")


def _image_files(path):
    from tfmeta.data.source import IMAGE_EXTENSIONS, DataError

    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise DataError(f"{path}: no such file or folder")
    files = sorted(os.path.join(root, name) for root, _, names in os.walk(path) for name in names
                   if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith("."))
    if not files:
        raise DataError(f"{path}: no images ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def _predict(args):
    from tfmeta.data import from_folder
    from tfmeta.data.source import load_image_files
    from tfmeta.run import load

    learner = load(args.checkpoint)
    height, _, channels = learner.input_shape
    support = from_folder(args.support, height, channels)
    files = _image_files(args.query)
    query = load_image_files(files, height, channels)
    classes, probabilities = learner.predict_proba(
        support.images, [support.class_names[c] for c in support.labels()], query)
    rows = []
    for name, p in zip(files, probabilities):
        rows.append({"file": name, "class": str(classes[p.argmax()]),
                     "probability": round(float(p.max()), 4)})
        print(f"{name}\t{classes[p.argmax()]}\t{p.max():.3f}")
    if args.out:
        from tfmeta.files import write_json

        write_json(rows, args.out)


def _formats(choice):
    from tfmeta.export import FORMATS

    return list(FORMATS) if choice == "all" else [] if choice == "savedmodel" else [choice]


def _report(version_dir, what):
    from tfmeta.export import read_metadata

    facts = read_metadata(version_dir)
    worst = max(facts["max_abs_difference"].values())
    files = ", ".join(["SavedModel"] + sorted(facts["formats"]))
    print(f"wrote {version_dir}: {what}\n{files}; each reloaded (here and in a fresh process) and "
          f"matching the Keras model (max abs difference of probabilities {worst:.2g})")


def _run_facts(config, run_dir) -> dict:
    """Where an export comes from, for its ``tfmeta.json``."""
    from tfmeta.run import _checkpoint_path

    return {"algorithm": config.algorithm, "run": os.path.abspath(run_dir),
            "checkpoint": os.path.abspath(_checkpoint_path(run_dir))}


def _adapt(args):
    import numpy as np

    import tfmeta.export as export
    from tfmeta.data import support_from_folder
    from tfmeta.run import load, load_config

    export.check_name(args.name)
    config = load_config(args.checkpoint)
    learner = load(args.checkpoint)
    height, _, channels = learner.input_shape
    support = support_from_folder(args.support, height, channels, same_size=not args.resize)
    names = np.array(support.class_names)[support.labels()]
    images, labels, classes = learner.prepare_support(support.images, names)
    classifier = learner.adapt(images, labels)
    metadata = dict(_run_facts(config, args.checkpoint), support=os.path.abspath(args.support),
                    support_images_per_class=dict(zip(support.class_names,
                                                      map(int, support.counts))))
    version_dir = export.saved_model(classifier, classes, images, args.export_dir, args.name,
                                     _formats(args.format), metadata)
    _report(version_dir, f"{config.algorithm} adapted to {len(classes)} classes "
                         f"({', '.join(map(str, classes))})")


def _export(args):
    import tfmeta.export as export

    targets = export.convert(args.model, _formats(args.format))
    _report(args.model, "added " + ", ".join(targets.values()))


def _export_fewshot(args):
    import tfmeta.export as export
    from tfmeta.run import load, load_config

    export.check_name(args.name)
    config = load_config(args.checkpoint)
    learner = load(args.checkpoint)
    version_dir = export.fewshot_saved_model(learner, args.export_dir, args.name,
                                             _formats(args.format),
                                             _run_facts(config, args.checkpoint),
                                             ways=config.episode.ways, shots=config.episode.shots)
    _report(version_dir, f"few-shot {config.algorithm} servable (adapts to each request's "
                         "support set)")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tfmeta.data.source import DataError

    commands = {"train": _train, "quickstart": _quickstart, "evaluate": _evaluate,
                "predict": _predict, "adapt": _adapt, "export": _export,
                "export-fewshot": _export_fewshot}
    errors = (DataError, FileNotFoundError, ValueError)
    if args.command.startswith(("adapt", "export")):
        from tfmeta.export import ExportError

        errors += (ExportError,)
    try:
        commands[args.command](args)
    except errors as err:
        print(f"tfmeta: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tfmeta: interrupted (resume with the same command)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
