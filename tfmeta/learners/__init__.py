"""Meta-learners behind one interface (:class:`tfmeta.learners.base.Learner`).

``create(name, backbone=..., episode=..., **options)`` builds any registered learner;
``ALGORITHMS`` maps each name to its class. Every module of this package is imported here, so a
learner file's ``@register`` is all it takes to add one (see ``tfmeta.learners.registry``).
"""

import importlib
import pkgutil

from tfmeta.learners.base import Learner
from tfmeta.learners.batchnorm import freeze_batchnorm_statistics
from tfmeta.learners.optimization import OptimizationLearner
from tfmeta.learners.inner import sgd_inner_loop
from tfmeta.learners.metric import MetricLearner
from tfmeta.learners.registry import (ALGORITHMS, create, learner_class, make_config, options,
                                      register)

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

from tfmeta.learners.anil import ANIL  # noqa: E402  (the classes, for the Python API)
from tfmeta.learners.maml import MAML, MAMLConfig  # noqa: E402
from tfmeta.learners.matching import MatchingConfig, MatchingNetwork  # noqa: E402
from tfmeta.learners.meta_sgd import MetaSGD, MetaSGDConfig  # noqa: E402
from tfmeta.learners.protonet import ProtoNet, ProtoNetConfig  # noqa: E402
from tfmeta.learners.relation import RelationConfig, RelationNetwork  # noqa: E402
from tfmeta.learners.reptile import Reptile, ReptileConfig  # noqa: E402
from tfmeta.learners.ridge import RidgeConfig, RidgeHead  # noqa: E402
from tfmeta.learners.siamese import SiameseConfig, SiameseNetwork  # noqa: E402
from tfmeta.learners.snail import SNAIL, SNAILConfig  # noqa: E402
from tfmeta.learners.svm import SVMConfig, SVMHead  # noqa: E402

__all__ = ["ALGORITHMS", "ANIL", "Learner", "MAML", "MAMLConfig", "MatchingConfig",
           "MatchingNetwork", "MetaSGD", "MetaSGDConfig", "MetricLearner", "OptimizationLearner",
           "ProtoNet", "ProtoNetConfig", "RelationConfig", "RelationNetwork", "Reptile",
           "ReptileConfig", "RidgeConfig", "RidgeHead", "SiameseConfig", "SiameseNetwork", "SNAIL",
           "SNAILConfig", "SVMConfig", "SVMHead", "create", "freeze_batchnorm_statistics",
           "learner_class", "make_config", "options", "register", "sgd_inner_loop"]
