"""Searching MAML's inner loop with KerasTuner.

MAML's inner learning rate and inner steps decide whether it learns at all (too large a step
overshoots, too small adapts nothing), and the right values change with the data. KerasTuner
searches them like any Keras hyperparameters, because `tfmeta.MetaModel` makes a meta-learner a
`keras.Model`: each trial builds a learner from the trial's values, `fit` meta-trains it, and
the tuner keeps the trial with the best accuracy on validation classes. The winner is then
scored by the field's protocol on test classes that neither training nor the search saw.

Needs KerasTuner: pip install keras-tuner

Run (about five minutes on 2 CPU cores; --smoke: under a minute, what CI runs):
    python examples/keras_tuner_search.py --out runs/tuner
    python examples/keras_tuner_search.py --smoke
"""

import argparse

import keras

import tfmeta
from tfmeta.data import DataConfig, EpisodeConfig, EpisodeSampler, load_splits
from tfmeta.evaluation import evaluate, format_result


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/tuner")
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--smoke", action="store_true", help="a tiny model, 2 trials of a few steps")
    args = p.parse_args()
    try:
        import keras_tuner
    except ImportError:
        raise SystemExit("this example needs KerasTuner: pip install keras-tuner") from None
    trials = 2 if args.smoke else args.trials
    width, steps, epochs = (8, 3, 2) if args.smoke else (32, 50, 4)

    # 1. Episodes: 5-way 1-shot tasks from disjoint classes of the built-in glyphs dataset.
    episode = EpisodeConfig(ways=5, shots=1, queries=15)
    splits = load_splits(DataConfig(dataset="glyphs"))
    train, val, test = (EpisodeSampler(splits[name], episode, meta_batch=4, seed=seed)
                        for seed, name in enumerate(("train", "val", "test")))

    # 2. The search space: MAML's inner step size and inner steps; one learner per trial.
    def build(hp):
        keras.utils.set_random_seed(0)  # every trial starts from the same weights
        learner = tfmeta.learners.create(
            "maml", "conv4", episode=episode, backbone_width=width,
            inner_lr=hp.Float("inner_lr", 0.01, 1.0, sampling="log"),
            inner_steps=hp.Int("inner_steps", 1, 3), inner_reduction="mean")
        model = tfmeta.MetaModel(learner)
        model.compile()
        return model

    # 3. Random search on the validation classes' accuracy (as deployed: adapt() per episode).
    tuner = keras_tuner.RandomSearch(
        build, objective=keras_tuner.Objective("val_accuracy", direction="max"),
        max_trials=trials, seed=0, directory=args.out, project_name="maml_inner_loop",
        overwrite=True)
    tuner.search(train.dataset(), steps_per_epoch=steps, epochs=epochs,
                 validation_data=val.dataset(), validation_steps=2 if args.smoke else 10,
                 shuffle=False, verbose=0)  # episodes are drawn at random already
    best = tuner.get_best_hyperparameters(1)[0]
    print(f"best inner loop: inner_lr {best['inner_lr']:.4f}, inner_steps {best['inner_steps']}")

    # 4. The winner, meta-trained again from the same start, scored on unseen test classes.
    model = build(best)
    model.fit(train.dataset(), steps_per_epoch=steps, epochs=epochs, shuffle=False, verbose=0)
    result = evaluate(model.learner, test, episodes=20 if args.smoke else 600)
    print(format_result(result))


if __name__ == "__main__":
    main()
