"""What each ``tfmeta`` command does, given its parsed arguments (:mod:`tfmeta.cli` builds the
parser from the config tree and calls these). Nothing here imports TensorFlow until a command
runs."""

from __future__ import annotations

import json
import logging
import os
import sys

from tfmeta.export_commands import SUPPORT_HELP, add_finetune_flags, finetune_of
from tfmeta.settings import add_flags
from tfmeta.threads import PARALLEL_TASKS

SETTING = "set:"  # argparse destinations of flags that stand for a setting of the config tree
EVALUATION = "evaluate:"  # ... and for a field of tfmeta.config.EvaluateConfig
TASK_FLAGS = ("dataset", "image-size", "channels", "ways", "shots", "queries", "meta-batch")
CONFIG_HELP = ("start from a preset (tfmeta info lists them), a .py/.json/.yaml config or a run "
               "directory (replays its run.json)")
SET_HELP = ("any setting, repeatable: learner.OPTION=VALUE (every option of the learner), "
            "train.X, episode.X, data.X, model, width, train_ways")


def setting_fields() -> list:
    """``[(prefix, dataclass)]`` of the run's config tree, the learners' config classes last."""
    from tfmeta.config import SECTIONS, RunConfig
    from tfmeta.learners import ALGORITHMS

    learners = [("learner.", cls.config_class) for cls, _ in ALGORITHMS.values()
                if cls.config_class is not None]
    return [("", RunConfig)] + [(f"{name}.", cls) for name, cls in SECTIONS.items()] + learners


def settings_of(args) -> list:
    """The ``KEY=VALUE`` settings the alias flags of ``args`` stand for, then ``--set``'s."""
    given = [f"{key[len(SETTING):]}={value}" for key, value in vars(args).items()
             if key.startswith(SETTING) and value is not None]
    return given + list(getattr(args, "set", []))


def progress(args) -> bool:
    return not (args.no_progress or args.quiet)


def train_config(args):
    from tfmeta.configs import load
    from tfmeta.run import RunConfig

    config = load(args.config) if args.config else RunConfig()
    return config.with_settings(settings_of(args)).validate()


def train_command(args):
    from tfmeta.distribute import make_strategy
    from tfmeta.run import train
    from tfmeta.threads import configure_threads

    # First: threads are set and the CPU split into devices only before TensorFlow starts.
    configure_threads(args.parallel_tasks)
    strategy = make_strategy(args.strategy, args.cpu_devices)
    if args.deterministic:  # seeds are the config's (train.seed); this makes the ops repeatable
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    config = train_config(args)
    if args.print_config:
        print(json.dumps(config.resolved().to_dict(), indent=2))
        return
    train(config, args.out, progress=progress(args), strategy=strategy,
          parallel_tasks=args.parallel_tasks)
    logging.getLogger("tfmeta").info(
        f"replay this run: tfmeta train --config {os.path.join(args.out, 'run.json')} "
        "--out NEW_DIR")


def quickstart_command(args):
    import time

    from tfmeta.configs import load
    from tfmeta.run import train

    config = load("quickstart")
    if args.steps is not None:
        config = config.with_values({"train.steps": args.steps})
    began = time.time()
    train(config.validate(), args.out, progress=progress(args))
    logging.getLogger("tfmeta").info(
        f"quickstart finished in {time.time() - began:.0f} s; run saved in {args.out}\n"
        f"next: tfmeta evaluate --checkpoint {args.out}   |   tfmeta predict --checkpoint "
        f"{args.out} --support SUPPORT_DIR --query QUERY_DIR")


def evaluate_command(args):
    from tfmeta.evaluation import format_result
    from tfmeta.inference import evaluate_run

    out = args.out or os.path.join(args.checkpoint, "evaluation.json")
    settings = settings_of(args) + [f"learner.{option}" for option in args.learner]
    result = evaluate_run(args.checkpoint, settings=settings, result_file=out,
                          evaluation=evaluation_of(args))
    print(format_result(result))
    if "open_set" in result:
        from tfmeta.openset import format_open_set

        print(format_open_set(result["open_set"]))
    print(f"written to {out}")


def calibrate_command(args):
    from tfmeta.calibration import CALIBRATION_FILE
    from tfmeta.inference import calibrate_run

    facts = calibrate_run(args.checkpoint, args.episodes, settings=settings_of(args),
                          calibration_settings=args.settings)
    for entry in facts.get("settings", [facts]):
        print(f"temperature {entry['temperature']:.4g} from {entry['episodes']} validation "
              f"episodes ({entry['ways']}-way {entry['shots']}-shot): calibration error (ECE) "
              f"{100 * entry['ece_before']:.2f}% -> {100 * entry['ece_after']:.2f}%")
    print(f"written to {os.path.join(args.checkpoint, CALIBRATION_FILE)}")


def evaluation_of(args):
    """The :class:`EvaluateConfig` of the evaluation flags given (``EVALUATION`` dests)."""
    from tfmeta.config import EvaluateConfig, parse_assignments
    from tfmeta.settings import check_value

    given = parse_assignments(f"{key[len(EVALUATION):]}={value}" for key, value
                              in vars(args).items() if key.startswith(EVALUATION)
                              and value is not None)
    return EvaluateConfig(**{key: check_value(EvaluateConfig, key, value, f"--{key}")
                             for key, value in given.items()})


def benchmark_command(args):
    from tfmeta.benchmark import evaluate_benchmark, markdown, protocol, run_benchmark, run_name
    from tfmeta.configs import load
    from tfmeta.errors import ConfigError

    protocol(args.name)  # an unknown name fails before anything is loaded
    if args.open_set < 0:
        raise ConfigError(f"--open-set must be >= 0, got {args.open_set}")
    answers = dict(tta=_tta(args.tta), finetune=finetune_of(args), open_set=args.open_set,
                   command="tfmeta " + " ".join(sys.argv[1:]))
    if args.evaluate:
        if args.algorithm or args.config or args.data_dir:
            raise ConfigError("--evaluate RUN evaluates a trained run: leave out --algorithm, "
                              "--data-dir and --config (--set learner.KEY=VALUE changes how it "
                              "adapts)")
        out = args.out or args.evaluate
        report = evaluate_benchmark(args.name, args.evaluate, out, args.test_episodes,
                                    settings=args.set, **answers)
    else:
        if not (args.algorithm and args.data_dir):
            raise ConfigError("tfmeta benchmark needs --algorithm and --data-dir (or --evaluate "
                              "RUN, a trained run)")
        out = args.out or os.path.join("runs", run_name(args.name, args.algorithm))
        report = run_benchmark(args.name, args.algorithm, args.data_dir, out,
                               config=load(args.config) if args.config else None,
                               settings=args.set, episodes=args.test_episodes,
                               progress=progress(args), **answers)
    print(markdown(report))
    print(f"written to {os.path.join(out, 'benchmark.json')} and benchmark.md")


def ensemble_command(args):
    from tfmeta.ensemble import write_ensemble

    facts = write_ensemble(args.runs, args.out)
    print(f"wrote {args.out}: an ensemble of {len(facts['members'])} runs "
          f"({', '.join(facts['algorithms'])}); tfmeta evaluate / predict / adapt / "
          f"export-fewshot --checkpoint {args.out} take it as one run")


def predict_command(args):
    from tfmeta.files import write_json
    from tfmeta.inference import predict_files

    rows = predict_files(args.checkpoint, args.support, args.query, reject=args.reject)
    for row in rows:
        print(f"{row['file']}\t{row['class']}\t{row['probability']:.3f}")
    if args.out:
        write_json(rows, args.out)


def info_command(args):
    from tfmeta.info import report

    print(report())


def show_episode_command(args):
    import numpy as np

    from tfmeta.data import EpisodeSampler, load_splits
    from tfmeta.data.episodes import TEST_SEED
    from tfmeta.plots import _pyplot, save_episode
    from tfmeta.run import RunConfig, load, load_config

    _pyplot()  # say what to install before any data is loaded
    if args.checkpoint:
        if settings_of(args):
            raise ValueError("show-episode --checkpoint draws the run's own data and episodes: "
                             "leave out --dataset, --ways, ...")
        config = load_config(args.checkpoint)
    else:
        config = RunConfig().with_settings(settings_of(args))
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


def plot_command(args):
    from tfmeta.plots import save_learning_curves

    out = args.out or os.path.join(args.run, "curves.png")
    points = save_learning_curves(args.run, out)
    print(f"wrote {out}: " + ", ".join(f"{tag} ({n} points)" for tag, n in sorted(points.items())))


def datasets_command(args):
    from tfmeta.info import datasets_report

    print("\n".join(datasets_report(probe_network=True)))


def train_flags(p):
    p.add_argument("--config", metavar="PRESET|FILE|RUN", help=CONFIG_HELP)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP)
    p.add_argument("--print-config", action="store_true", help="print the resolved config, exit")
    add_flags(p, setting_fields(), SETTING)
    p.add_argument("--strategy", default="default",
                   help="default (one device), mirrored (every GPU, or --cpu-devices) or "
                        "multiworker (the workers of TF_CONFIG; the same command on each)")
    p.add_argument("--cpu-devices", type=int, default=None, metavar="N",
                   help="split the CPU into N logical devices (for --strategy mirrored)")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic TensorFlow ops: the same run gives the same losses")
    p.add_argument("--parallel-tasks", type=int, default=PARALLEL_TASKS, metavar="N",
                   help=f"tasks of a meta-batch meta-trained side by side, each on its share of "
                        f"the CPU cores (default {PARALLEL_TASKS}; the same updates for any N, N "
                        f"tasks' activations in memory)")
    p.add_argument("--out", default="runs/latest", help="run directory")


def quickstart_flags(p):
    p.add_argument("--out", default="runs/quickstart")
    p.add_argument("--steps", type=int, default=None, help="meta-iterations (preset: 1000)")


def evaluate_flags(p):
    from tfmeta.config import EvaluateConfig

    p.add_argument("--checkpoint", required=True, help="run directory")
    add_flags(p, [("", EvaluateConfig)], EVALUATION)
    add_flags(p, setting_fields(), SETTING, only=TASK_FLAGS)
    p.add_argument("--learner", metavar="OPTION=VALUE", action="append", default=[],
                   help="change how the trained learner adapts, repeatable: one of its own "
                        "options that holds no weights (a test-time step, MAML's head, ...)")
    p.add_argument("--out", default=None, help="JSON result file (default: RUN/evaluation.json)")


def calibrate_flags(p):
    from tfmeta.calibration import CALIBRATION_EPISODES

    p.add_argument("--checkpoint", required=True, help="run (or ensemble) directory")
    p.add_argument("--episodes", type=int, default=CALIBRATION_EPISODES,
                   help=f"validation episodes to fit on (default {CALIBRATION_EPISODES})")
    p.add_argument("--settings", metavar="WAYSxSHOTS,...",
                   help="also calibrate these settings, each on as many episodes (e.g. "
                        "5x1,20x5): a support set is answered at its nearest setting's "
                        "temperature (default: the run's train.calibration_settings)")
    add_flags(p, setting_fields(), SETTING, only=TASK_FLAGS)


def benchmark_flags(p):
    p.add_argument("name", help="the benchmark: omniglot-small")
    p.add_argument("--algorithm", help="the learner (tfmeta info lists them)")
    p.add_argument("--data-dir",
                   help="the benchmark's data (omniglot-small: the folder holding "
                        "images_background_small1.zip and images_background_small2.zip)")
    p.add_argument("--evaluate", metavar="RUN",
                   help="evaluate this trained run (or ensemble: tfmeta ensemble) in every "
                        "setting, without training (instead of --algorithm and --data-dir)")
    p.add_argument("--config", metavar="PRESET|FILE|RUN",
                   help="start from this config (default: the preset <benchmark>_<algorithm>)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any setting, repeatable (as tfmeta train)")
    p.add_argument("--test-episodes", type=int, default=None,
                   help="episodes per test setting (default: the protocol's)")
    p.add_argument("--tta", action="store_true",
                   help="also evaluate each setting with test-time augmentation (shifted support "
                        "copies as extra shots, answers averaged over shifted query copies)")
    add_finetune_flags(p, "also evaluate each setting with the backbone fine-tuned on each "
                          "support set for N Adam steps")
    p.add_argument("--open-set", type=int, default=0, metavar="U",
                   help="also evaluate each setting open-set: queries of U unknown classes "
                        "beside the known ones (AUROC; rejection at the run's threshold)")
    p.add_argument("--out", default=None, help="run directory (default: runs/<name>_<algorithm>)")


def ensemble_flags(p):
    p.add_argument("runs", nargs="+", metavar="RUN", help="trained run directories (2 or more)")
    p.add_argument("--out", required=True, help="the ensemble's run directory")


def predict_flags(p):
    p.add_argument("--checkpoint", required=True, help="run directory")
    p.add_argument("--support", required=True, help=SUPPORT_HELP)
    p.add_argument("--query", required=True, help="folder (or one file) of images to classify")
    p.add_argument("--reject", action="store_true",
                   help="answer 'none of these' for images unlike every support class (above "
                        "the run's unknown-score threshold, fitted on validation classes)")
    p.add_argument("--out", default=None, help="JSON file for the predictions")


def show_episode_flags(p):
    p.add_argument("--checkpoint", help="run directory: its data, episode shape and predictions")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--index", type=int, default=0, help="which episode of the split's stream")
    p.add_argument("--out", default="episode.png", help="PNG file to write")
    add_flags(p, setting_fields(), SETTING, only=TASK_FLAGS[:-1])


def plot_flags(p):
    p.add_argument("run", help="run directory")
    p.add_argument("--out", default=None, help="PNG file (default RUN/curves.png)")


def _tta(wanted: bool):
    from tfmeta.learners.tta import TestTimeAugmentation

    return TestTimeAugmentation() if wanted else None
