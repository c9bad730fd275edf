"""Meta-training with Keras' own `fit` and callbacks.

A Keras user already knows `model.fit(..., callbacks=[...])`. `tfmeta.MetaModel` wraps a
meta-learner as a `keras.Model` whose training step is one meta-step (adapt to each task's
support set, score its queries, update), so the loop, the logs and the callbacks are Keras' own:
here EarlyStopping watches the accuracy on validation classes, CSVLogger writes one row per
epoch, and ModelCheckpoint keeps the best backbone.

Run (about two minutes on 2 CPU cores; --smoke: a few seconds, what CI runs):
    python examples/keras_fit.py --out runs/keras_fit
    python examples/keras_fit.py --smoke
"""

import argparse
import os

import keras
import numpy as np

import tfmeta
from tfmeta.data import DataConfig, EpisodeConfig, EpisodeSampler, load_splits
from tfmeta.evaluation import evaluate, format_result


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algorithm", default="protonet")
    p.add_argument("--out", default="runs/keras_fit")
    p.add_argument("--smoke", action="store_true", help="a tiny model and a few steps")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)

    # 1. Episodes: 5-way 1-shot tasks from disjoint classes of the built-in glyphs dataset.
    episode = EpisodeConfig(ways=5, shots=1, queries=15)
    splits = load_splits(DataConfig(dataset="glyphs"))
    train, val, test = (EpisodeSampler(splits[name], episode, meta_batch=4, seed=seed)
                        for seed, name in enumerate(("train", "val", "test")))

    # 2. A learner, wrapped as a Keras model; compile() takes the learner's optimizer and loss.
    keras.utils.set_random_seed(0)
    learner = tfmeta.learners.create(args.algorithm, "conv4", episode=episode,
                                     backbone_width=8 if args.smoke else 32)
    model = tfmeta.MetaModel(learner)
    model.compile()

    # 3. Keras' fit: each step is one meta-batch; validation scores held-out classes.
    history = model.fit(
        train.dataset(), steps_per_epoch=5 if args.smoke else 50, epochs=2 if args.smoke else 10,
        validation_data=val.dataset(), validation_steps=2 if args.smoke else 25, verbose=2,
        callbacks=[keras.callbacks.EarlyStopping("val_accuracy", patience=3, mode="max",
                                                 restore_best_weights=True),
                   keras.callbacks.CSVLogger(os.path.join(args.out, "log.csv")),
                   keras.callbacks.ModelCheckpoint(os.path.join(args.out, "best.weights.h5"),
                                                   monitor="val_accuracy", mode="max",
                                                   save_weights_only=True)])
    print("validation accuracy by epoch:", np.round(history.history["val_accuracy"], 3).tolist())

    # 4. The field's protocol on classes never seen in training (the learner is the same object).
    result = evaluate(learner, test, episodes=20 if args.smoke else 600)
    print(format_result(result))


if __name__ == "__main__":
    main()
