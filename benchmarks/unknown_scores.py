"""Which unknown score tells "none of these" best: AUROC of candidate scores on open-set episodes
of a trained run's VALIDATION classes (recipes are chosen on validation classes, never on test).

    python benchmarks/unknown_scores.py RUN [--episodes 200] [--tta]

Open-set episodes: 5 known classes + 5 unknown, and 15 known + 5 unknown within one alphabet
(omniglot-small's validation alphabets have at most 20 characters), 1-shot, 5 queries per class.
Scores from the logits the learner answers with (any learner): the negated largest logit
(tfmeta's ``unknown_scores``), 1 - the largest probability, energy (-logsumexp, Liu et al. 2020)
at temperatures 1 and 5, the margin between the two largest logits, the entropy, each query's rank
among the episode's queries (``query_rank_scores``: transductive, the queries answered together); and, for a run
whose learner has an embedding without support statistics (metric learners), distances in it:
cosine to the nearest prototype, squared distance in features standardised by the support set.
``--tta``: the logit scores of the answers with test-time augmentation (tfmeta.learners.tta).
"""

import argparse

import numpy as np
import tensorflow as tf

from tfmeta.data import EpisodeConfig, EpisodeSampler, load_splits
from tfmeta.data.episodes import parent_folder
from tfmeta.learners.answers import query_rank_scores
from tfmeta.openset import auroc
from tfmeta.run import load, load_config


def logit_scores(logits) -> dict:
    z = np.asarray(logits, np.float64)
    top = np.sort(z, -1)[:, ::-1]
    p = np.exp(z - top[:, :1])
    p /= p.sum(-1, keepdims=True)
    scores = {"max-logit (tfmeta)": -top[:, 0], "1 - max probability": -p.max(-1),
              "query rank (transductive)": query_rank_scores(z),
              "margin": -(top[:, 0] - top[:, 1]), "entropy": -(p * np.log(p + 1e-12)).sum(-1)}
    for t in (1.0, 5.0):
        zt = z / t
        m = zt.max(-1, keepdims=True)
        scores[f"energy, T={t:g}"] = -(m[:, 0] + np.log(np.exp(zt - m).sum(-1)))
    return scores


def embedding_scores(embed, support_x, support_y, query_x, ways) -> dict:
    fs = embed(support_x).numpy().astype(np.float64)
    fq = embed(query_x).numpy().astype(np.float64)
    centres = np.stack([fs[support_y == k].mean(0) for k in range(ways)])
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    mu, sd = fs.mean(0), fs.std(0) + 1e-3
    standardised = (((fq - mu) / sd)[:, None] - ((centres - mu) / sd)[None]) ** 2
    return {"cosine to the nearest prototype": -(unit(fq) @ unit(centres).T).max(1),
            "standardised squared distance": standardised.sum(-1).min(1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--tta", action="store_true", help="answers with test-time augmentation")
    args = parser.parse_args()
    learner = load(args.run)
    learner.temperature = 1.0
    validation = load_splits(load_config(args.run).data)["val"]
    if args.tta:
        from tfmeta.learners.tta import TestTimeAugmentation, tta_logits

        augmentation = TestTimeAugmentation()
        logits_of = tf.function(lambda sx, sy, qx: tta_logits(learner, sx, sy, qx, augmentation))
        embed = None
    else:
        logits_of = tf.function(learner.fewshot_logits)
        try:
            embed = learner.embedding_model()
        except ValueError:  # normalises with the support's statistics: logit scores only
            embed = None
    for ways, within in ((5, False), (15, True)):
        sampler = EpisodeSampler(validation, EpisodeConfig(ways + 5, 1, 5), 4, 777, "test",
                                 group_of=parent_folder if within else None)
        figures: dict = {}
        for batch in sampler.dataset(num_batches=args.episodes // 4):
            for support_x, support_y, query_x, query_y in zip(*[np.asarray(t) for t in batch]):
                keep = support_y < ways
                logits = logits_of(tf.constant(support_x[keep]), tf.constant(support_y[keep]),
                                   tf.constant(query_x)).numpy()
                scores = logit_scores(logits)
                if embed is not None:
                    scores.update(embedding_scores(embed, support_x[keep], support_y[keep],
                                                   query_x, ways))
                known = query_y < ways
                for name, score in scores.items():
                    figures.setdefault(name, []).append(auroc(score[~known], score[known]))
        print(f"{ways} known + 5 unknown classes{', within an alphabet' if within else ''}, "
              f"{args.episodes} validation episodes, AUROC:")
        for name, values in sorted(figures.items(), key=lambda item: -np.mean(item[1])):
            print(f"  {name}: {np.mean(values):.3f}")


if __name__ == "__main__":
    main()
