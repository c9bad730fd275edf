"""Named few-shot benchmarks: meta-train a learner on a protocol's training classes (the best
checkpoint by validation accuracy is kept), then evaluate it in each of the protocol's test
settings with the field's protocol (mean accuracy +- 95 % CI over 600 episodes of a fixed seed,
as deployed, with the transductive figure beside it where the learner reports one).

    tfmeta benchmark omniglot-small --algorithm protonet --data-dir DIR --out runs/bench_protonet

writes the run (checkpoints, ``run.json``) and ``benchmark.json`` / ``benchmark.md`` in ``--out``.
A preset ``omniglot_small_<algorithm>`` (``tfmeta/configs``) is the starting config when there is
one; ``--config`` and ``--set`` change it like ``tfmeta train``'s.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time

from tfmeta.errors import ConfigError  # (TensorFlow is imported only when a benchmark runs)
from tfmeta.evaluation import PROTOCOL_EPISODES


@dataclasses.dataclass(frozen=True)
class Setting:
    """One test setting: ``ways``-way ``shots``-shot, ``queries`` per class, classes drawn from
    one alphabet (``within_alphabet``) or from all test classes."""

    name: str
    ways: int
    shots: int
    queries: int
    within_alphabet: bool = False


@dataclasses.dataclass(frozen=True)
class Protocol:
    name: str
    dataset: str  # the DataConfig.dataset kind; the data directory follows its colon
    settings: tuple
    episodes: int = PROTOCOL_EPISODES
    seed: int = 20_000  # tfmeta.data.episodes.TEST_SEED: every run's test episodes


PROTOCOLS = {
    "omniglot-small": Protocol("omniglot-small", "omniglot-small", (
        Setting("5-way 1-shot", 5, 1, 15),
        Setting("5-way 5-shot", 5, 5, 15),
        Setting("20-way 1-shot", 20, 1, 5),
        Setting("20-way 5-shot", 20, 5, 5),
        Setting("20-way 1-shot, within alphabet", 20, 1, 5, within_alphabet=True),
    )),
}


def protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise ConfigError(f"unknown benchmark '{name}': use {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def starting_config(name: str, algorithm: str):
    """The preset ``<protocol>_<algorithm>`` if tfmeta ships one, else the defaults."""
    from tfmeta.configs import load, names
    from tfmeta.run import RunConfig

    preset = run_name(name, algorithm)
    return load(preset) if preset in names() else RunConfig(algorithm=algorithm)


def run_name(name: str, algorithm: str) -> str:
    """``omniglot_small_protonet``: the preset's name, and the default run directory's."""
    return f"{name.replace('-', '_')}_{algorithm.replace('+', 'p')}"


def evaluate_settings(learner, test_source, bench: Protocol, meta_batch: int = 4,
                      episodes: int | None = None, log=None, tta=None,
                      finetune=None, open_set: int = 0) -> list:
    """One result per setting of ``bench`` on ``test_source`` (a setting the learner cannot run,
    e.g. 20 ways for a MAML trained for 5, is reported as skipped, with the reason); with
    ``tta`` (:class:`tfmeta.learners.tta.TestTimeAugmentation`) each also with test-time
    augmentation, on the same episodes; with ``finetune``
    (:class:`tfmeta.learners.finetune.TestTimeFineTuning`) also with the backbone fine-tuned on
    each support set; with ``open_set`` U, also open-set figures (:mod:`tfmeta.openset`) on as
    many episodes of ``ways + U`` classes (within one alphabet where the setting is)."""
    log = log or logging.getLogger("tfmeta").info  # the CLI shows it; --quiet hides it
    from tfmeta.data import EpisodeConfig, EpisodeSampler
    from tfmeta.data.episodes import parent_folder
    from tfmeta.evaluation import evaluate

    rows = []
    for s in bench.settings:
        row = {"setting": s.name, "ways": s.ways, "shots": s.shots, "queries": s.queries,
               "within_alphabet": s.within_alphabet}
        if learner.max_ways is not None and s.ways > learner.max_ways:
            row["skipped"] = (f"{learner.name} was trained for {learner.max_ways} ways "
                              f"(train with --ways {s.ways})")
            rows.append(row)
            log(f"{s.name}: skipped: {row['skipped']}")
            continue
        sampler = EpisodeSampler(test_source, EpisodeConfig(s.ways, s.shots, s.queries),
                                 meta_batch, bench.seed, "test",
                                 group_of=parent_folder if s.within_alphabet else None)
        began = time.time()
        row.update(evaluate(learner, sampler, episodes or bench.episodes, tta=tta,
                            finetune=finetune))
        if open_set:
            row["open_set"] = _open_set(learner, test_source, bench, s, meta_batch,
                                        episodes or bench.episodes, open_set)
        row["seconds"] = round(time.time() - began, 1)
        rows.append(row)
        log(f"{s.name}: {_figure(row)}; open set: {_open_set_figure(row)}" if open_set
            else f"{s.name}: {_figure(row)}")
    return rows


def _open_set(learner, test_source, bench, s, meta_batch, episodes, unknown) -> dict:
    """Setting ``s``'s open-set figures with ``unknown`` more classes (or why it is skipped)."""
    from tfmeta.data import EpisodeConfig
    from tfmeta.data.episodes import parent_folder
    from tfmeta.errors import DataError
    from tfmeta.openset import evaluate_open_set_episodes

    try:
        return evaluate_open_set_episodes(
            learner, test_source, EpisodeConfig(s.ways, s.shots, s.queries), unknown, meta_batch,
            bench.seed, episodes, group_of=parent_folder if s.within_alphabet else None,
            progress=False)
    except (ConfigError, DataError) as err:
        return {"skipped": str(err)}


def _open_set_figure(row: dict) -> str:
    o = row.get("open_set")
    if o is None or "skipped" in o:
        return "n/a"
    text = f"AUROC {o['auroc']:.3f} +- {o['auroc_ci95']:.3f}"
    if "transductive_auroc" in o:
        text += (f" (queries together {o['transductive_auroc']:.3f} +- "
                 f"{o['transductive_auroc_ci95']:.3f})")
    if "unknown_rejected" in o:
        text += (f"; rejected {100 * o['unknown_rejected']:.1f} % of unknown, known right "
                 f"{100 * o['known_accuracy']:.1f} %")
    return text


def _figure(row: dict) -> str:
    if "skipped" in row:
        return "n/a"
    text = f"{100 * row['accuracy']:.2f} +- {100 * row['ci95']:.2f}"
    if "transductive_accuracy" in row:
        text += (f" (transductive {100 * row['transductive_accuracy']:.2f} +- "
                 f"{100 * row['transductive_ci95']:.2f})")
    if "tta_accuracy" in row:
        text += f"; TTA {100 * row['tta_accuracy']:.2f} +- {100 * row['tta_ci95']:.2f}"
        if "tta_transductive_accuracy" in row:
            text += (f" (transductive {100 * row['tta_transductive_accuracy']:.2f} +- "
                     f"{100 * row['tta_transductive_ci95']:.2f})")
    for key, label in (("finetune", "fine-tuned"), ("finetune_tta", "fine-tuned + TTA")):
        if f"{key}_accuracy" in row:
            text += (f"; {label} {100 * row[f'{key}_accuracy']:.2f} +- "
                     f"{100 * row[f'{key}_ci95']:.2f}")
    return text


def _calibration(row: dict) -> str:
    if "ece" not in row:
        return "n/a"
    return (f"{100 * row['ece']:.2f} ({100 * row['uncalibrated_ece']:.2f}; temperature "
            f"{row['temperature']:.3g})")


def markdown(report: dict) -> str:
    """The report as a Markdown table (one row per setting)."""
    trained = (f"Trained in {report['train_seconds'] / 60:.1f} min of this command's wall time "
               f"({report['steps']} meta-steps; a resumed run counts what it trained after "
               f"resuming) on {report['machine']}"
               if report.get("train_seconds") is not None
               else f"Evaluated without training ({report['evaluated_run']}) on "
                    f"{report['machine']}")
    lines = [f"## {report['benchmark']}: {report['algorithm']}", "",
             f"{trained}; {report['episodes']} test episodes per setting, seed "
             f"{report['seed']}, {report['test_classes']} test classes. Command: "
             f"`{report['command']}`", "",
             "| setting | accuracy % (as deployed, +- 95% CI; TTA: with test-time augmentation; "
             "fine-tuned: the backbone fine-tuned on each support set) | calibration error "
             "(ECE, 15 bins) %: at the run's temperature (uncalibrated) | open set: "
             f"{report.get('open_set') or 'no'} unknown classes' queries too |",
             "| --- | --- | --- | --- |"]
    lines += [f"| {row['setting']} | {_figure(row)} | {_calibration(row)} | "
              f"{_open_set_figure(row)} |" for row in report["settings"]]
    return "\n".join(lines) + "\n"


def run_benchmark(name: str, algorithm: str, data_dir: str, out_dir: str, config=None,
                  settings=(), episodes: int | None = None, progress: bool = True,
                  command: str = "", log=None, tta=None, finetune=None,
                  open_set: int = 0) -> dict:
    """Train (or resume) ``algorithm`` on benchmark ``name`` with data from ``data_dir`` in
    ``out_dir``, evaluate every test setting (with ``tta``: also with test-time augmentation;
    with ``finetune``: also fine-tuned on each support set; with ``open_set`` U: also open-set
    figures with U unknown classes), write ``benchmark.json`` and ``benchmark.md``."""
    log = log or logging.getLogger("tfmeta").info  # the CLI shows it; --quiet hides it
    from tfmeta import run

    bench = protocol(name)
    if config is None:
        config = starting_config(name, algorithm)
    config = config.with_values({"algorithm": algorithm,
                                 "data.dataset": f"{bench.dataset}:{data_dir}",
                                 "train.calibration_settings": calibration_settings(bench)})
    config = config.with_settings(settings).validate()
    began = time.time()
    fit = run.train(config, out_dir, progress=progress, log=log, test=False)
    train_seconds = time.time() - began
    report = _evaluate_and_write(name, out_dir, out_dir, episodes, command, log, tta, finetune,
                                 meta_batch=config.train.meta_batch, open_set=open_set)
    report.update(train_seconds=round(train_seconds, 1), steps=config.train.steps, last_fit=fit)
    _write(report, out_dir)
    return report


def calibration_settings(bench: Protocol) -> str:
    """The benchmark's ways x shots (``"5x1,5x5,20x1,20x5"``): a run calibrates each."""
    settings = dict.fromkeys(f"{s.ways}x{s.shots}" for s in bench.settings)
    return ",".join(settings)


def evaluate_benchmark(name: str, run_dir: str, out_dir: str | None = None,
                       episodes: int | None = None, command: str = "", log=None, tta=None,
                       finetune=None, open_set: int = 0, settings=()) -> dict:
    """Evaluate a trained run (or an ensemble of runs: ``tfmeta ensemble``) in every setting of
    benchmark ``name``, without training (``tfmeta benchmark NAME --evaluate RUN``); writes
    ``benchmark.json`` and ``benchmark.md`` to ``out_dir`` (default: the run's directory).
    ``settings`` (``learner.KEY=VALUE``) change how the learner adapts (Relation Networks'
    ``shot_pooling``, MAML's ``test_inner_steps``, ...); the report records them."""
    from tfmeta import run

    recorded = run.load_config(run_dir)
    bench = protocol(name)
    if recorded.data.dataset.split(":")[0] != bench.dataset:
        raise ConfigError(f"{run_dir} was trained on {recorded.data.dataset}, not on {name}'s "
                          f"{bench.dataset}")
    outside = [s for s in settings if not s.strip().startswith("learner.")]
    if outside:
        raise ConfigError(f"--evaluate RUN takes learner.KEY=VALUE settings only (how the "
                          f"learner adapts), not {outside[0]!r}")
    options = run.changed_learner_options(recorded, recorded.with_settings(settings))
    out_dir = out_dir or run_dir
    report = _evaluate_and_write(name, run_dir, out_dir, episodes, command, log, tta, finetune,
                                 meta_batch=recorded.train.meta_batch, open_set=open_set,
                                 learner_options=options)
    report.update(train_seconds=None, steps=None, evaluated_run=run_dir,
                  learner_options=options)
    _write(report, out_dir)
    return report


def _evaluate_and_write(name, run_dir, out_dir, episodes, command, log, tta, finetune,
                        meta_batch, open_set=0, learner_options=None) -> dict:
    """The benchmark's report of the run in ``run_dir``: every setting evaluated."""
    import platform

    from tfmeta import run
    from tfmeta.data import load_splits

    bench = protocol(name)
    learner = run.load(run_dir, learner_options=learner_options)
    recorded = run.load_config(run_dir)  # the run's own config (its measured polarity included)
    test = load_splits(recorded.data)["test"]
    rows = evaluate_settings(learner, test, bench, meta_batch, episodes, log, tta, finetune,
                             open_set)
    return {"benchmark": name, "algorithm": learner.name, "settings": rows, "open_set": open_set,
            "episodes": episodes or bench.episodes, "seed": bench.seed,
            "test_classes": test.num_classes, "command": command,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "config": recorded.to_dict()}


def _write(report: dict, out_dir: str) -> None:
    from tfmeta.files import write_json

    os.makedirs(out_dir, exist_ok=True)
    write_json(report, os.path.join(out_dir, "benchmark.json"))
    with open(os.path.join(out_dir, "benchmark.md"), "w") as f:
        f.write(markdown(report))
