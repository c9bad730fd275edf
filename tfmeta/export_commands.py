"""``tfmeta adapt``, ``export`` and ``export-fewshot``: their flags and what they do (a run
adapted to a support folder, or its features, or a servable that adapts per request, written in
TF Serving's layout; conversions to ONNX and TFLite). TensorFlow is imported when one runs."""

from __future__ import annotations

import dataclasses
import os

FORMATS = ("savedmodel", "onnx", "tflite", "all")
SUPPORT_HELP = "folder with one subfolder of images per class"


def adapt_flags(p):
    _export_target_flags(p, required=True)
    p.add_argument("--support", required=True, help=SUPPORT_HELP)
    p.add_argument("--format", default="savedmodel", choices=FORMATS,
                   help="besides the SavedModel: onnx, tflite or all")
    p.add_argument("--resize", action="store_true",
                   help="accept support images of different sizes (each is resized)")
    p.add_argument("--tta", action="store_true",
                   help="the classifier answers with test-time augmentation (shifted support "
                        "copies as extra shots, answers averaged over shifted copies of each "
                        "image), in every export")
    add_finetune_flags(p, "fine-tune the backbone on the support set for N Adam steps first (with "
                          "affine distortions); every export holds the fine-tuned weights")


def add_finetune_flags(p, text: str) -> None:
    """``--finetune-steps N`` (doing what ``text`` says) and ``--finetune-lr``; plain flags, so
    that a command's flags are built without TensorFlow."""
    p.add_argument("--finetune-steps", type=int, default=0, metavar="N", help=text)
    p.add_argument("--finetune-lr", type=float, default=None, metavar="VALUE",
                   help="learning rate of that fine-tuning (default: "
                        "tfmeta.learners.finetune.LEARNING_RATE)")


def finetune_of(args):
    """The :class:`tfmeta.learners.finetune.TestTimeFineTuning` of the flags (``None``: none)."""
    if not args.finetune_steps and args.finetune_lr is None:
        return None
    from tfmeta.errors import ConfigError
    from tfmeta.learners.finetune import LEARNING_RATE, TestTimeFineTuning

    if not args.finetune_steps:
        raise ConfigError("--finetune-lr needs --finetune-steps: set both, or neither")
    return TestTimeFineTuning(args.finetune_steps, args.finetune_lr or LEARNING_RATE)


def _export_target_flags(p, required):
    p.add_argument("--checkpoint", required=required, help="run directory")
    p.add_argument("--name", required=required,
                   help="model name: writes EXPORT_DIR/NAME/<version>")
    p.add_argument("--export-dir", default="savedmodels")


def export_flags(p):
    p.add_argument("--model", help="version folder to convert, e.g. savedmodels/NAME/1")
    p.add_argument("--format", choices=FORMATS, help="onnx, tflite or all (converting); with "
                                                     "--embedding, besides the SavedModel")
    p.add_argument("--embedding", action="store_true",
                   help="write --checkpoint's backbone as a SavedModel with an embed signature "
                        "(images -> embeddings) and embedding.keras, as EXPORT_DIR/NAME/<version>")
    _export_target_flags(p, required=False)
    p.add_argument("--support", help="--embedding: a folder of your images (one subfolder per "
                                     "class); the MAML family takes its BatchNorm statistics, "
                                     "every file is verified on them")
    p.add_argument("--quantize", choices=("dynamic", "int8", "all"),
                   help="with --model: quantized TFLite beside it (dynamic range, or int8 "
                        "calibrated on the support images), size and agreement measured")


def export_fewshot_flags(p):
    _export_target_flags(p, required=True)
    p.add_argument("--format", default="savedmodel", choices=FORMATS)


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
    facts = {"algorithm": learner.name, "run": os.path.abspath(args.checkpoint)}
    member_dirs = getattr(learner, "member_dirs", None)  # an ensemble's runs
    if member_dirs is None:
        facts["checkpoint"] = os.path.abspath(checkpoint_path(args.checkpoint))
    else:
        facts["checkpoints"] = [os.path.abspath(checkpoint_path(d)) for d in member_dirs]
    return config, learner, facts


def adapt_command(args):
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
    tta = None
    if args.tta:
        from tfmeta.learners.tta import TestTimeAugmentation

        tta = TestTimeAugmentation()
        facts.update(test_time_augmentation={"shift": tta.shift, "support": tta.support,
                                             "query": tta.query})
    finetune = finetune_of(args)
    if finetune is not None:
        facts.update(test_time_finetuning=dataclasses.asdict(finetune))
    classifier = learner.adapt(images, labels, tta=tta, finetune=finetune)
    facts.update(support=os.path.abspath(args.support),
                 support_images_per_class=dict(zip(support.class_names, map(int, support.counts))))
    version_dir = export.saved_model(classifier, classes, images, args.export_dir, args.name,
                                     _formats(args.format), facts,
                                     unknown_threshold=learner.support_calibration(labels)[1])
    _report(version_dir, f"{config.algorithm} adapted to {len(classes)} classes "
                         f"({', '.join(map(str, classes))})")


def export_command(args):
    import tfmeta.export as export

    if args.embedding:
        return export_embedding(args)
    if not args.model or (args.format in (None, "savedmodel") and not args.quantize):
        raise ValueError("export: give --model VERSION_DIR --format onnx|tflite|all and / or "
                         "--quantize dynamic|int8|all, or --embedding --checkpoint RUN --name NAME")
    if args.format not in (None, "savedmodel"):
        targets = export.convert(args.model, _formats(args.format))
        _report(args.model, "added " + ", ".join(targets.values()))
    if args.quantize:
        modes = ["dynamic", "int8"] if args.quantize == "all" else [args.quantize]
        print(export.describe_quantized(export.quantize(args.model, modes)))


def export_embedding(args):
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


def export_fewshot_command(args):
    import tfmeta.export as export

    config, learner, facts = _loaded_run(args)
    version_dir = export.fewshot_saved_model(learner, args.export_dir, args.name,
                                             _formats(args.format), facts,
                                             ways=config.episode.ways, shots=config.episode.shots)
    _report(version_dir, f"few-shot {config.algorithm} servable (adapts to each request's "
                         "support set)")
