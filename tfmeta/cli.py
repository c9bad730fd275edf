"""``tfmeta`` command line: train, quickstart, evaluate, calibrate, benchmark, ensemble, predict,
adapt, export, export-fewshot, show-episode, plot, info, datasets.

A run is one config tree (:mod:`tfmeta.config`): ``--config`` starts from a preset, a file or a
run, ``--set KEY=VALUE`` changes any setting, and the flags that stand for settings are built
from the tree's fields (their help, alias and default are stated once, there; a learner's come
from its own config class). Bad flags, paths or data give one line ``tfmeta: error: ...`` on
stderr and exit code 2. ``--help`` and ``--version`` answer without importing TensorFlow; a
command's own flags are built (importing it) only for that command.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys

from tfmeta import commands, export_commands
from tfmeta.progress import LOGGER as PROGRESS_LOGGER


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one clear line, exit code 2
        self.exit(2, f"tfmeta: error: {message}\n")


def _add_output_flags(p):
    p.add_argument("--no-progress", action="store_true", help="no progress bar or lines")
    p.add_argument("--quiet", action="store_true",
                   help="no progress and no log lines (warnings and errors only)")
    p.add_argument("--verbose", action="store_true",
                   help="TensorFlow's own start-up and log lines on stderr (hidden otherwise, "
                        "unless TF_CPP_MIN_LOG_LEVEL is set)")


C, E = commands, export_commands
# name: (help, its flags, what it does, whether it has the output flags)
COMMANDS = {
    "train": ("meta-train, then evaluate on test classes", C.train_flags, C.train_command, True),
    "quickstart": ("meta-train MAML on the built-in glyphs (~6 min on CPU)", C.quickstart_flags,
                   C.quickstart_command, True),
    "evaluate": ("evaluate a run on its test classes (600+ episodes)", C.evaluate_flags,
                 C.evaluate_command, True),
    "calibrate": ("fit the temperature of a run's answers on validation episodes",
                  C.calibrate_flags, C.calibrate_command, True),
    "benchmark": ("train and evaluate a learner on a named benchmark (omniglot-small)",
                  C.benchmark_flags, C.benchmark_command, True),
    "ensemble": ("make one run of several trained runs: their probabilities averaged",
                 C.ensemble_flags, C.ensemble_command, False),
    "predict": ("classify query images given a support folder", C.predict_flags,
                C.predict_command, True),
    "adapt": ("adapt a run to a support folder and export it for serving", E.adapt_flags,
              E.adapt_command, True),
    "export": ("convert an exported version to ONNX or TFLite; with --embedding, export a run's "
               "meta-learned features", E.export_flags, E.export_command, True),
    "export-fewshot": ("export a servable that adapts to the support set of each request",
                       E.export_fewshot_flags, E.export_fewshot_command, True),
    "show-episode": ("draw one episode as a PNG grid (with --checkpoint: the run's predictions, "
                     "mistakes marked)", C.show_episode_flags, C.show_episode_command, False),
    "plot": ("draw a run's learning curves as a PNG", C.plot_flags, C.plot_command, False),
    "info": ("versions, devices, caches, presets, learners, offline datasets", None,
             C.info_command, False),
    "datasets": ("the --dataset sources, which work offline, and whether downloads can reach "
                 "the network now", None, C.datasets_command, False),
}


def build_parser(only=None) -> argparse.ArgumentParser:
    """The parser of every command, or with ``only`` (a command name, or ``()``) the flags of
    that one alone, so that ``--help`` and light commands need not import TensorFlow."""
    from tfmeta.version import __version__

    parser = _Parser(prog="tfmeta", description="Few-shot meta-learning for TensorFlow / Keras.")
    parser.add_argument("--version", action="version", version=f"tfmeta {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, (text, add_flags, _, output) in COMMANDS.items():
        p = sub.add_parser(name, help=text)
        if only is None or only == name:
            if add_flags:
                add_flags(p)
            if output:
                _add_output_flags(p)
    return parser


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


def main(argv=None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    command = next((w for w in words if w in COMMANDS), ())
    # TensorFlow's C++ start-up lines are hidden on the command line (tfmeta.quiet) unless asked
    # for with --verbose or a TF_CPP_MIN_LOG_LEVEL of the user's; main(argv) from Python is left
    # alone.
    quiet = argv is None and "TF_CPP_MIN_LOG_LEVEL" not in os.environ and "--verbose" not in words
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tfmeta.quiet import cpp_log_lines_hidden

    with cpp_log_lines_hidden() if quiet else contextlib.nullcontext():
        return _run(words, command)


def _run(words, command) -> int:
    from tfmeta.errors import TfmetaError, TrainingStopped, WorkerLost

    try:
        args = build_parser(command).parse_args(words)
        _configure_logging(getattr(args, "quiet", False), not getattr(args, "no_progress", False))
        COMMANDS[args.command][2](args)
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
