"""Choose how a trained run adapts on its VALIDATION classes (never on test ones): the accuracy
of its learner under each set of learner options that hold no weights (test-time inner steps or
rates, MAML's prototype head, ...), in each setting.

    python benchmarks/validation_options.py RUN --options "" "test_inner_lr=0.1" \\
        "test_inner_lr=0.02" --settings 5x1,5x5,20x5 [--episodes 100]
    python benchmarks/validation_options.py RUN --options refine_steps=1 refine_steps=3 \\
        --settings 20x1w,20x5                # ProtoNet's transductive figure; w: one alphabet

Each set of options is a space-free list ``KEY=VALUE,KEY=VALUE`` ("" for the run's own); each
setting WAYSxSHOTS is evaluated on the same validation episodes (5 queries per class) for every
set, as deployed.
"""

import argparse

from tfmeta.calibration import parse_settings
from tfmeta.config import parse_assignments
from tfmeta.data import EpisodeConfig, EpisodeSampler, load_splits
from tfmeta.data.episodes import parent_folder
from tfmeta.evaluation import evaluate
from tfmeta.run import load, load_config


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--options", nargs="+", default=[""])
    parser.add_argument("--settings", default="5x1,5x5",
                        help="WAYSxSHOTS[w]: w draws each episode's classes from one group "
                             "(alphabet)")
    parser.add_argument("--episodes", type=int, default=100)
    args = parser.parse_args()
    config = load_config(args.run)
    validation = load_splits(config.data)["val"]
    for text in args.options:
        options = parse_assignments(part for part in text.split(",") if part)
        learner = load(args.run, learner_options=options)
        figures = []
        for setting in args.settings.split(","):
            within = setting.endswith("w")
            (ways, shots), = parse_settings(setting.rstrip("w"))
            sampler = EpisodeSampler(validation, EpisodeConfig(ways, shots, 5), 4, 123, "val",
                                     group_of=parent_folder if within else None)
            result = evaluate(learner, sampler, args.episodes, progress=False)
            figure = (f"{ways}-way {shots}-shot{' within an alphabet' * within} {100 * result['accuracy']:.2f} +- "
                      f"{100 * result['ci95']:.2f} %")
            if "transductive_accuracy" in result:
                figure += f" (transductive {100 * result['transductive_accuracy']:.2f} %)"
            figures.append(figure)
        print(f"{text or 'as trained'}: " + "; ".join(figures), flush=True)


if __name__ == "__main__":
    main()
