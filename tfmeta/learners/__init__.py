"""Meta-learners behind one interface (:class:`tfmeta.learners.base.Learner`)."""

import dataclasses

from tfmeta.learners.base import Learner, OptimizationLearner, freeze_batchnorm_statistics
from tfmeta.learners.inner import sgd_inner_loop
from tfmeta.learners.anil import ANIL
from tfmeta.learners.maml import MAML, MAMLConfig
from tfmeta.learners.matching import MatchingConfig, MatchingNetwork
from tfmeta.learners.meta_sgd import MetaSGD, MetaSGDConfig
from tfmeta.learners.metric import MetricLearner
from tfmeta.learners.protonet import ProtoNet, ProtoNetConfig
from tfmeta.learners.relation import RelationConfig, RelationNetwork
from tfmeta.learners.reptile import Reptile, ReptileConfig
from tfmeta.learners.ridge import RidgeConfig, RidgeHead
from tfmeta.learners.siamese import SiameseConfig, SiameseNetwork
from tfmeta.learners.snail import SNAIL, SNAILConfig
from tfmeta.learners.svm import SVMConfig, SVMHead

# name -> (learner class, config overrides); "fomaml" is MAML with first_order=True.
ALGORITHMS = {
    "maml": (MAML, {}),
    "fomaml": (MAML, {"first_order": True}),
    "reptile": (Reptile, {}),
    "anil": (ANIL, {}),
    "metasgd": (MetaSGD, {}),
    "protonet": (ProtoNet, {}),
    "matching": (MatchingNetwork, {}),
    "ridge": (RidgeHead, {}),
    "siamese": (SiameseNetwork, {}),
    "relation": (RelationNetwork, {}),
    "svm": (SVMHead, {}),
    "snail": (SNAIL, {}),
}

__all__ = ["ALGORITHMS", "ANIL", "Learner", "MAML", "MAMLConfig", "MatchingConfig",
           "MatchingNetwork", "MetaSGD", "MetaSGDConfig", "MetricLearner",
           "OptimizationLearner", "ProtoNet", "ProtoNetConfig", "RelationConfig",
           "RelationNetwork", "Reptile", "ReptileConfig",
           "RidgeConfig", "RidgeHead", "SiameseConfig", "SiameseNetwork", "SNAIL", "SNAILConfig", "SVMConfig",
           "SVMHead",
           "freeze_batchnorm_statistics", "make_config", "options", "sgd_inner_loop"]


def options(algorithm: str) -> dict:
    """``{option: default}`` of ``algorithm``'s config (what ``make_config`` accepts)."""
    cls, fixed = _algorithm(algorithm)
    return {f.name: getattr(cls.config_class(), f.name) for f in dataclasses.fields(cls.config_class)
            if f.name not in fixed and f.name not in EPISODE_FACTS}


# Facts of the episodes, not hyperparameters: given to a config only if it has such a field.
EPISODE_FACTS = ("ways", "max_support")


def _algorithm(algorithm: str):
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm '{algorithm}': use {', '.join(ALGORITHMS)}")
    return ALGORITHMS[algorithm]


def make_config(algorithm: str, ways: int | None = None, max_support: int | None = None,
                **overrides):
    """The config dataclass of ``algorithm`` with ``overrides``.

    An option the algorithm does not have is an error naming the ones it has (never dropped).
    ``ways`` and ``max_support`` (the largest support set) are episode facts, used by learners
    whose config needs them (SNAIL) and ignored by the others. A list value for a tuple option
    becomes a tuple (JSON has no tuples)."""
    cls, fixed = _algorithm(algorithm)
    fields = {f.name: f for f in dataclasses.fields(cls.config_class)}
    unknown = sorted(k for k in overrides if k not in fields or k in EPISODE_FACTS)
    if unknown:
        raise ValueError(f"{algorithm} has no option {', '.join(unknown)}; its options: "
                         f"{', '.join(options(algorithm)) or 'none'}")
    clash = sorted(k for k in overrides if k in fixed and overrides[k] != fixed[k])
    if clash:
        raise ValueError(f"{algorithm} fixes {', '.join(f'{k}={fixed[k]}' for k in clash)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    values.update({k: v for k, v in dict(ways=ways, max_support=max_support).items()
                   if v is not None and k in fields})
    values.update(fixed)
    return cls.config_class(**values)
