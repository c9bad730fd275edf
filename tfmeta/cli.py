"""``tfmeta`` command line: train, quickstart, evaluate, benchmark, predict, adapt, export,
export-fewshot, show-episode, plot, info, datasets.

A run is one config tree (``tfmeta.run.RunConfig``): ``--config`` starts from a preset, a file or a
run, ``--set KEY=VALUE`` changes any setting, and the short flags below are aliases of settings.
Bad flags, paths or data give one line ``tfmeta: error: ...`` on stderr and exit code 2. Nothing
here imports TensorFlow until a command needs it, so ``--help`` and ``--version`` answer at once.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from tfmeta.progress import LOGGER as PROGRESS_LOGGER

# Short flags: each is an alias of one setting of the config tree (flag: (setting, help)).
SETTING_FLAGS = {
    "algorithm": ("algorithm", "maml, fomaml, reptile, anil, metasgd, protonet, matching, "
                               "relation, siamese, ridge, svm, snail (or one you registered)"),
    "dataset": ("data.dataset", "glyphs | omniglot | omniglot-small:DIR | mini-imagenet:DIR | "
                                "folder:PATH | zip:PATH | tfds:NAME"),
    "class-splits": ("data.class_splits", "folder of train/val/test .txt or .csv files naming "
                                          "each split's classes"),
    "image-size": ("data.image_size", "images are resized to this square size"),
    "channels": ("data.channels", "1 or 3"),
    "ways": ("episode.ways", "classes per episode"),
    "shots": ("episode.shots", "support images per class"),
    "queries": ("episode.queries", "query images per class"),
    "train-ways": ("train_ways", "ways of training episodes (metric learners)"),
    "model": ("model", "backbone: conv4, resnet12, keras_applications:NAME (any "
                       "keras.applications network, e.g. keras_applications:MobileNetV3Small)"
                       ", keras_file:PATH (your own saved .keras model) or keras_hub:DIR (a "
                       "KerasHub preset saved in a folder)"),
    "weights": ("weights", "local pretrained weights of a keras_applications backbone "
                           "(without its top; nothing is downloaded)"),
    "width": ("width", "filters per layer (conv4) or of the first block (resnet12)"),
    "steps": ("train.steps", "meta-iterations"),
    "meta-batch": ("train.meta_batch", "tasks per meta-iteration"),
    "outer-lr": ("train.outer_lr", "outer optimizer's learning rate (default: the learner's)"),
    "val-every": ("train.val_every", "steps between validations"),
    "val-episodes": ("train.val_episodes", "episodes per validation"),
    "episodes": ("train.test_episodes", "test episodes (the protocol: 600 or more)"),
    "checkpoint-every": ("train.checkpoint_every", "steps between checkpoints"),
    "seed": ("train.seed", "seed of weights and episodes"),
    "adversarial": ("train.adversarial", "fgsm or pgd: adversarial querying while "
                                         "meta-training (Goldblum et al. 2020)"),
    "epsilon": ("train.attack_epsilon", "L-infinity radius of the attack, images in [0, 1] "
                                        "(default 8/255)"),
    "attack-steps": ("train.attack_steps", "PGD steps (default 7)"),
    "weight-decay": ("train.weight_decay", "decoupled weight decay of the outer optimizer"),
    "dropout": ("dropout", "dropout of the backbone while meta-training (conv4: after each "
                           "block; resnet12: DropBlock)"),
    "label-smoothing": ("train.label_smoothing", "label smoothing of the meta-training loss"),
    "on-nonfinite": ("train.on_nonfinite", "skip (default) or stop at a NaN/Inf meta-loss"),
    "precision": ("train.precision", "float32, mixed_bfloat16 or mixed_float16 (Keras mixed "
                                     "precision; float16 with dynamic loss scaling)"),
    "inner-steps": ("learner.inner_steps", "inner-loop steps while meta-training"),
    "test-inner-steps": ("learner.test_inner_steps", "inner-loop steps at test"),
    "inner-lr": ("learner.inner_lr", "inner-loop learning rate"),
}
SWITCHES = {  # flags without a value: the setting becomes true
    "rotations": ("data.rotations", "add 90/180/270 degree rotations as new classes"),
    "xla": ("train.jit_compile", "compile the steps with XLA"),
    "skip-bad-files": ("data.skip_bad_files", "folder/zip data: leave out unreadable or "
                                              "non-image files (counted) instead of stopping"),
    "fce": ("learner.fce", "matching networks: full context embeddings"),
    "freeze-backbone": ("freeze_backbone", "keep a keras_applications / keras_file / keras_hub "
                                           "backbone's weights fixed; only the learner's head "
                                           "learns"),
}
TASK_FLAGS = ("dataset", "image-size", "channels", "ways", "shots", "queries", "meta-batch")
FORMATS = ("savedmodel", "onnx", "tflite", "all")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one clear line, exit code 2
        self.exit(2, f"tfmeta: error: {message}\n")


def _add_setting_flags(p, flags):
    for flag in flags:
        if flag in SWITCHES:
            setting, text = SWITCHES[flag]
            p.add_argument(f"--{flag}", dest=setting, action="store_const", const="true",
                           help=f"{text} (= --set {setting}=true)")
        else:
            setting, text = SETTING_FLAGS[flag]
            p.add_argument(f"--{flag}", dest=setting, metavar="VALUE",
                           help=f"{text} (= --set {setting}=VALUE)")


def _add_output_flags(p):
    p.add_argument("--no-progress", action="store_true", help="no progress bar or lines")
    p.add_argument("--quiet", action="store_true",
                   help="no progress and no log lines (warnings and errors only)")
    p.add_argument("--verbose", action="store_true",
                   help="TensorFlow's own start-up and log lines on stderr (hidden otherwise, "
                        "unless TF_CPP_MIN_LOG_LEVEL is set)")


def _progress(args) -> bool:
    return not (args.no_progress or args.quiet)


def _configure_logging(quiet: bool, progress: bool = True) -> None:
    """The "tfmeta" logger (what the library logs: loading, resuming, results) to standard output
    as plain lines; ``--quiet``: warnings only. Progress (:mod:`tfmeta.progress`) unless
    ``--no-progress`` or ``--quiet``. Replaces the handler of an earlier call."""
    logger = logging.getLogger("tfmeta")
    for handler in [h for h in logger.handlers if getattr(h, "tfmeta_cli", False)]:
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stdout)
    handler.tfmeta_cli = True
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False
    logging.getLogger(PROGRESS_LOGGER).setLevel(
        logging.INFO if progress and not quiet else logging.WARNING)


def _settings(args) -> list:
    """The ``KEY=VALUE`` settings the alias flags of ``args`` stand for, then ``--set``'s."""
    aliases = {s for s, _ in SETTING_FLAGS.values()} | {s for s, _ in SWITCHES.values()}
    given = [f"{key}={value}" for key, value in vars(args).items()
             if key in aliases and value is not None]
    return given + list(getattr(args, "set", []))


def build_parser() -> argparse.ArgumentParser:
    from tfmeta import __version__

    parser = _Parser(prog="tfmeta", description="Few-shot meta-learning for TensorFlow / Keras.")
    parser.add_argument("--version", action="version", version=f"tfmeta {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("train", help="meta-train, then evaluate on test classes")
    p.add_argument("--config", metavar="PRESET|FILE|RUN",
                   help="start from a preset (tfmeta info lists them), a .py/.json/.yaml config "
                        "or a run directory (replays its run.json)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any setting, repeatable: learner.OPTION=VALUE (every option of the "
                        "learner), train.X, episode.X, data.X, model, width, train_ways")
    p.add_argument("--print-config", action="store_true", help="print the resolved config, exit")
    _add_setting_flags(p, list(SETTING_FLAGS) + list(SWITCHES))
    p.add_argument("--strategy", default="default",
                   help="default (one device), mirrored (every GPU, or --cpu-devices) or "
                        "multiworker (the workers of TF_CONFIG; the same command on each)")
    p.add_argument("--cpu-devices", type=int, default=None, metavar="N",
                   help="split the CPU into N logical devices (for --strategy mirrored)")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic TensorFlow ops: the same run gives the same losses")
    p.add_argument("--parallel-tasks", type=int, default=2, metavar="N",
                   help="tasks of a meta-batch meta-trained side by side, each on its share of "
                        "the CPU cores (default 2; the same updates for any N, N tasks' "
                        "activations in memory)")
    p.add_argument("--out", default="runs/latest", help="run directory")
    _add_output_flags(p)

    p = sub.add_parser("quickstart", help="meta-train MAML on the built-in glyphs (~6 min on CPU)")
    p.add_argument("--out", default="runs/quickstart")
    p.add_argument("--steps", type=int, default=None, help="meta-iterations (preset: 1000)")
    _add_output_flags(p)

    p = sub.add_parser("evaluate", help="evaluate a run on its test classes (600+ episodes)")
    p.add_argument("--checkpoint", required=True, help="run directory")
    p.add_argument("--episodes", type=int, default=600)
    p.add_argument("--seed", type=int, default=None, help="seed of the test episodes")
    _add_setting_flags(p, TASK_FLAGS)
    p.add_argument("--out", default=None, help="JSON result file (default: RUN/evaluation.json)")
    p.add_argument("--attack", choices=("fgsm", "pgd"), default=None,
                   help="also report robust accuracy under this attack on the queries, computed "
                        "through the adaptation")
    p.add_argument("--epsilon", type=float, default=8 / 255,
                   help="the attack's L-infinity radius, images in [0, 1] (default 8/255)")
    p.add_argument("--attack-steps", type=int, default=7, help="PGD steps (default 7)")
    _add_output_flags(p)

    p = sub.add_parser("benchmark", help="train and evaluate a learner on a named benchmark "
                                         "(omniglot-small)")
    p.add_argument("name", help="the benchmark: omniglot-small")
    p.add_argument("--algorithm", required=True, help=SETTING_FLAGS["algorithm"][1])
    p.add_argument("--data-dir", required=True,
                   help="the benchmark's data (omniglot-small: the folder holding "
                        "images_background_small1.zip and images_background_small2.zip)")
    p.add_argument("--config", metavar="PRESET|FILE|RUN",
                   help="start from this config (default: the preset <benchmark>_<algorithm>)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any setting, repeatable (as tfmeta train)")
    p.add_argument("--test-episodes", type=int, default=None,
                   help="episodes per test setting (the protocol: 600)")
    p.add_argument("--out", default=None, help="run directory (default: runs/<name>_<algorithm>)")
    _add_output_flags(p)

    p = sub.add_parser("predict", help="classify query images given a support folder")
    p.add_argument("--checkpoint", required=True, help="run directory")
    p.add_argument("--support", required=True, help="folder with one subfolder of images per class")
    p.add_argument("--query", required=True, help="folder (or one file) of images to classify")
    p.add_argument("--out", default=None, help="JSON file for the predictions")
    _add_output_flags(p)

    p = sub.add_parser("adapt", help="adapt a run to a support folder and export it for serving")
    p.add_argument("--checkpoint", required=True, help="run directory")
    p.add_argument("--support", required=True, help="folder with one subfolder of images per class")
    p.add_argument("--name", required=True, help="model name: writes EXPORT_DIR/NAME/<version>")
    p.add_argument("--export-dir", default="savedmodels")
    p.add_argument("--format", default="savedmodel", choices=FORMATS,
                   help="besides the SavedModel: onnx, tflite or all")
    p.add_argument("--resize", action="store_true",
                   help="accept support images of different sizes (each is resized)")
    _add_output_flags(p)

    p = sub.add_parser("export", help="convert an exported version to ONNX or TFLite; with "
                                      "--embedding, export a run's meta-learned features")
    p.add_argument("--model", help="version folder to convert, e.g. savedmodels/NAME/1")
    p.add_argument("--format", choices=FORMATS, help="onnx, tflite or all (converting); with "
                                                     "--embedding, besides the SavedModel")
    p.add_argument("--embedding", action="store_true",
                   help="write --checkpoint's backbone as a SavedModel with an embed signature "
                        "(images -> embeddings) and embedding.keras, as EXPORT_DIR/NAME/<version>")
    p.add_argument("--checkpoint", help="run directory (--embedding)")
    p.add_argument("--name", help="model name (--embedding)")
    p.add_argument("--support", help="--embedding: a folder of your images (one subfolder per "
                                     "class); the MAML family takes its BatchNorm statistics, "
                                     "every file is verified on them")
    p.add_argument("--export-dir", default="savedmodels")
    p.add_argument("--quantize", choices=("dynamic", "int8", "all"),
                   help="with --model: quantized TFLite beside it (dynamic range, or int8 "
                        "calibrated on the support images), size and agreement measured")
    _add_output_flags(p)

    p = sub.add_parser("export-fewshot",
                       help="export a servable that adapts to the support set of each request")
    p.add_argument("--checkpoint", required=True, help="run directory")
    p.add_argument("--name", required=True, help="model name: writes EXPORT_DIR/NAME/<version>")
    p.add_argument("--export-dir", default="savedmodels")
    p.add_argument("--format", default="savedmodel", choices=FORMATS)
    _add_output_flags(p)

    p = sub.add_parser("show-episode", help="draw one episode as a PNG grid (with --checkpoint: "
                                            "the run's predictions, mistakes marked)")
    p.add_argument("--checkpoint", help="run directory: its data, episode shape and predictions")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--index", type=int, default=0, help="which episode of the split's stream")
    p.add_argument("--out", default="episode.png", help="PNG file to write")
    _add_setting_flags(p, ["dataset", "image-size", "channels", "ways", "shots", "queries"])

    p = sub.add_parser("plot", help="draw a run's learning curves as a PNG")
    p.add_argument("run", help="run directory")
    p.add_argument("--out", default=None, help="PNG file (default RUN/curves.png)")

    sub.add_parser("info", help="versions, devices, caches, presets, learners, offline datasets")
    sub.add_parser("datasets", help="the --dataset sources, which work offline, and whether "
                                    "downloads can reach the network now")
    return parser


def _train_config(args):
    from tfmeta.configs import load
    from tfmeta.run import RunConfig

    config = load(args.config) if args.config else RunConfig()
    return config.with_settings(_settings(args)).validate()


def _train(args):
    from tfmeta.distribute import make_strategy
    from tfmeta.run import train
    from tfmeta.threads import configure_threads

    # First: threads are set and the CPU split into devices only before TensorFlow starts.
    configure_threads(args.parallel_tasks)
    strategy = make_strategy(args.strategy, args.cpu_devices)
    if args.deterministic:  # seeds are the config's (train.seed); this makes the ops repeatable
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    config = _train_config(args)
    if args.print_config:
        print(json.dumps(config.resolved().to_dict(), indent=2))
        return
    train(config, args.out, progress=_progress(args), strategy=strategy,
          parallel_tasks=args.parallel_tasks)
    logging.getLogger("tfmeta").info(
        f"replay this run: tfmeta train --config {os.path.join(args.out, 'run.json')} "
        "--out NEW_DIR")


def _quickstart(args):
    import time

    from tfmeta.configs import load
    from tfmeta.run import train

    config = load("quickstart")
    if args.steps is not None:
        config = config.with_values({"train.steps": args.steps})
    began = time.time()
    train(config.validate(), args.out, progress=_progress(args))
    logging.getLogger("tfmeta").info(
        f"quickstart finished in {time.time() - began:.0f} s; run saved in {args.out}\n"
        f"next: tfmeta evaluate --checkpoint {args.out}   |   tfmeta predict --checkpoint "
        f"{args.out} --support SUPPORT_DIR --query QUERY_DIR")


def _evaluate(args):
    from tfmeta.evaluation import format_result
    from tfmeta.run import evaluate_run

    out = args.out or os.path.join(args.checkpoint, "evaluation.json")
    attack = None
    if args.attack:
        from tfmeta.learners.adversarial import Attack

        attack = Attack(args.attack, args.epsilon, args.attack_steps)
    print(format_result(evaluate_run(args.checkpoint, args.episodes, args.seed, _settings(args),
                                     out, attack=attack)))
    print(f"written to {out}")


def _benchmark(args):
    from tfmeta.benchmark import markdown, protocol, run_benchmark, run_name
    from tfmeta.configs import load

    protocol(args.name)  # an unknown name fails before anything is loaded
    out = args.out or os.path.join("runs", run_name(args.name, args.algorithm))
    report = run_benchmark(args.name, args.algorithm, args.data_dir, out,
                           config=load(args.config) if args.config else None,
                           settings=args.set, episodes=args.test_episodes,
                           progress=_progress(args),
                           command="tfmeta " + " ".join(sys.argv[1:]))
    print(markdown(report))
    print(f"written to {os.path.join(out, 'benchmark.json')} and benchmark.md")


def _predict(args):
    from tfmeta.files import write_json
    from tfmeta.run import predict_files

    rows = predict_files(args.checkpoint, args.support, args.query)
    for row in rows:
        print(f"{row['file']}\t{row['class']}\t{row['probability']:.3f}")
    if args.out:
        write_json(rows, args.out)


def _formats(choice):
    from tfmeta.export import FORMATS as TARGETS

    return list(TARGETS) if choice == "all" else [] if choice in (None, "savedmodel") else [choice]


def _report(version_dir, what):
    from tfmeta.export import describe

    print(f"wrote {version_dir}: {what}\n{describe(version_dir)}")


def _loaded_run(args):
    """``(config, learner, facts)`` of ``--checkpoint``; facts say where an export comes from."""
    import tfmeta.export as export
    from tfmeta.run import checkpoint_path, load, load_config

    export.check_name(args.name)
    config = load_config(args.checkpoint)
    learner = load(args.checkpoint)
    facts = {"algorithm": config.algorithm, "run": os.path.abspath(args.checkpoint),
             "checkpoint": os.path.abspath(checkpoint_path(args.checkpoint))}
    return config, learner, facts


def _adapt(args):
    import numpy as np

    import tfmeta.export as export
    from tfmeta.data import support_from_folder
    from tfmeta.progress import stage

    config, learner, facts = _loaded_run(args)
    height, _, channels = learner.input_shape
    support = support_from_folder(args.support, height, channels, same_size=not args.resize)
    names = np.array(support.class_names)[support.labels()]
    images, labels, classes = learner.prepare_support(support.images, names)
    stage(f"adapting {config.algorithm} to {len(classes)} classes, {len(images)} support images")
    classifier = learner.adapt(images, labels)
    facts.update(support=os.path.abspath(args.support),
                 support_images_per_class=dict(zip(support.class_names, map(int, support.counts))))
    version_dir = export.saved_model(classifier, classes, images, args.export_dir, args.name,
                                     _formats(args.format), facts)
    _report(version_dir, f"{config.algorithm} adapted to {len(classes)} classes "
                         f"({', '.join(map(str, classes))})")


def _export(args):
    import tfmeta.export as export

    if args.embedding:
        return _export_embedding(args)
    if not args.model or (args.format in (None, "savedmodel") and not args.quantize):
        raise ValueError("export: give --model VERSION_DIR --format onnx|tflite|all and / or "
                         "--quantize dynamic|int8|all, or --embedding --checkpoint RUN --name NAME")
    if args.format not in (None, "savedmodel"):
        targets = export.convert(args.model, _formats(args.format))
        _report(args.model, "added " + ", ".join(targets.values()))
    if args.quantize:
        modes = ["dynamic", "int8"] if args.quantize == "all" else [args.quantize]
        print(export.describe_quantized(export.quantize(args.model, modes)))


def _export_embedding(args):
    import numpy as np

    import tfmeta.export as export
    from tfmeta.data import support_from_folder
    from tfmeta.data.images import other_polarity

    if not args.checkpoint or not args.name:
        raise ValueError("export --embedding needs --checkpoint RUN and --name NAME")
    config, learner, facts = _loaded_run(args)
    images = None
    if args.support:
        height, _, channels = learner.input_shape
        images = np.asarray(learner.preprocess(
            support_from_folder(args.support, height, channels, same_size=False).images))
        if learner.polarity is not None and bool(other_polarity(images, learner.polarity)):
            images = 1.0 - images  # to the training images' polarity, which the embedding takes
        facts.update(support=os.path.abspath(args.support))
    facts.update(polarity=learner.polarity)
    version_dir = export.embedding_saved_model(learner, images, args.export_dir, args.name,
                                               _formats(args.format), facts)
    _report(version_dir, f"the meta-learned features of {config.algorithm} "
                         f"({export.read_metadata(version_dir)['embedding_size']} per image)")


def _export_fewshot(args):
    import tfmeta.export as export

    config, learner, facts = _loaded_run(args)
    version_dir = export.fewshot_saved_model(learner, args.export_dir, args.name,
                                             _formats(args.format), facts,
                                             ways=config.episode.ways, shots=config.episode.shots)
    _report(version_dir, f"few-shot {config.algorithm} servable (adapts to each request's "
                         "support set)")


def _info(args):
    from tfmeta.info import report

    print(report())


def _show_episode(args):
    import numpy as np

    from tfmeta.data import EpisodeSampler, load_splits
    from tfmeta.data.episodes import TEST_SEED
    from tfmeta.plots import _pyplot, save_episode
    from tfmeta.run import RunConfig, load, load_config

    _pyplot()  # say what to install before any data is loaded
    if args.checkpoint:
        if _settings(args):
            raise ValueError("show-episode --checkpoint draws the run's own data and episodes: "
                             "leave out --dataset, --ways, ...")
        config = load_config(args.checkpoint)
    else:
        config = RunConfig().with_settings(_settings(args))
    sampler = EpisodeSampler(load_splits(config.data)[args.split], config.episode, 1,
                             TEST_SEED, args.split)
    support_x, support_y, query_x, query_y = (
        np.asarray(t[0]) for t in next(iter(sampler.dataset(args.index, 1))))
    predicted, title = None, f"{config.data.dataset} {args.split} episode {args.index}"
    if args.checkpoint:
        learner = load(args.checkpoint)
        logits = learner.adapt(support_x, support_y)(query_x, training=False)
        predicted = np.asarray(logits)[:, :config.episode.ways].argmax(-1)
        title += (f": {config.algorithm}, {np.sum(predicted == query_y)} of {len(query_y)} "
                  "queries right (red: mistakes)")
    drawn = save_episode(args.out, support_x, support_y, query_x, query_y, predicted,
                         class_names=[f"class {c}" for c in range(config.episode.ways)],
                         title=title)
    print(f"wrote {args.out}: {drawn['ways']} classes, {drawn['queries']} queries"
          + (f", {drawn['mistakes']} mistakes" if predicted is not None else ""))


def _plot(args):
    from tfmeta.plots import save_learning_curves

    out = args.out or os.path.join(args.run, "curves.png")
    points = save_learning_curves(args.run, out)
    print(f"wrote {out}: " + ", ".join(f"{tag} ({n} points)" for tag, n in sorted(points.items())))


def _datasets(args):
    from tfmeta.info import datasets_report

    print("\n".join(datasets_report(probe_network=True)))


COMMANDS = {"train": _train, "quickstart": _quickstart, "evaluate": _evaluate,
            "benchmark": _benchmark, "predict": _predict, "adapt": _adapt, "export": _export,
            "export-fewshot": _export_fewshot, "info": _info, "datasets": _datasets,
            "show-episode": _show_episode, "plot": _plot}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    # TensorFlow's C++ start-up lines are hidden on the command line (tfmeta.quiet) unless asked
    # for with --verbose or a TF_CPP_MIN_LOG_LEVEL of the user's; main(argv) from Python is left
    # alone.
    quiet = (argv is None and "TF_CPP_MIN_LOG_LEVEL" not in os.environ
             and not getattr(args, "verbose", False))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if quiet:
        from tfmeta.quiet import cpp_log_lines_hidden

        with cpp_log_lines_hidden():
            return _run(args)
    return _run(args)


def _run(args) -> int:
    _configure_logging(getattr(args, "quiet", False), not getattr(args, "no_progress", False))
    from tfmeta.errors import TfmetaError, TrainingStopped, WorkerLost

    try:
        COMMANDS[args.command](args)
    except WorkerLost as err:  # not bad input: the run stopped, and resumes
        print(f"tfmeta: error: {err}", file=sys.stderr)
        return 1
    except TrainingStopped as err:  # a signal (checkpoint saved) or a non-finite meta-loss
        print(f"tfmeta: {'stopped' if err.signal else 'error'}: {err}", file=sys.stderr)
        return 128 + err.signal if err.signal else 1
    except (TfmetaError, FileNotFoundError, ValueError) as err:
        print(f"tfmeta: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tfmeta: interrupted (resume with the same command)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
