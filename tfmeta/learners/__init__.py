"""Meta-learners behind one interface (:class:`tfmeta.learners.base.Learner`)."""

import dataclasses

from tfmeta.learners.base import Learner, OptimizationLearner, freeze_batchnorm_statistics
from tfmeta.learners.inner import sgd_inner_loop
from tfmeta.learners.anil import ANIL
from tfmeta.learners.maml import MAML, MAMLConfig
from tfmeta.learners.matching import MatchingConfig, MatchingNetwork
from tfmeta.learners.meta_sgd import MetaSGD
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
           "MatchingNetwork", "MetaSGD", "MetricLearner",
           "OptimizationLearner", "ProtoNet", "ProtoNetConfig", "RelationConfig",
           "RelationNetwork", "Reptile", "ReptileConfig",
           "RidgeConfig", "RidgeHead", "SiameseConfig", "SiameseNetwork", "SNAIL", "SNAILConfig", "SVMConfig",
           "SVMHead",
           "freeze_batchnorm_statistics", "make_config", "sgd_inner_loop"]


def make_config(algorithm: str, **overrides):
    """The config dataclass of ``algorithm`` with ``overrides`` (``None`` values are ignored)."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm '{algorithm}': use {', '.join(ALGORITHMS)}")
    cls, fixed = ALGORITHMS[algorithm]
    fields = {f.name for f in dataclasses.fields(cls.config_class)}
    values = {k: v for k, v in overrides.items() if v is not None and k in fields}
    values.update(fixed)
    return cls.config_class(**values)
