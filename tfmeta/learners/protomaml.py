"""Proto-MAML (Triantafillou et al., ICLR 2020, "Meta-Dataset: A Dataset of Datasets for Learning
to Learn from Few Examples", arXiv:1903.03096, section 3.2): MAML whose head starts each task as
the Prototypical Network of its support set.

For each task, with f_theta the features below the head and c_k the mean feature of class k on
the support set::

    W_k = 2 c_k,  b_k = -||c_k||^2                      # head := prototypes (f W + b ranks as
                                                        # -||f - c_k||^2, ProtoNet's logits)
    phi = inner_loop(body, W, b)                        # MAML's inner loop from there
    theta <- theta - beta * grad_theta L_query(phi)     # outer loop; the gradient flows through
                                                        # the prototypes into the body

The meta-learned head is not used: every task's head comes from its support set, so its
adaptation starts where ProtoNet ends, and at test the head is as wide as the support has classes
(any number; :mod:`tfmeta.learners.prototype_head`). It is MAML with ``prototype_head="always"``
(any MAML-family learner takes ``"test"``: trained with its own head, the prototypes at test).
Options and their defaults are otherwise MAML's (:class:`tfmeta.learners.maml.MAMLConfig`);
``first_order`` drops the inner loop's second-order term as in the paper's fo-Proto-MAML.
"""

from __future__ import annotations

import dataclasses

from tfmeta.learners.maml import MAML, MAMLConfig
from tfmeta.learners.registry import register


@dataclasses.dataclass
class ProtoMAMLConfig(MAMLConfig):
    """MAML's options; the head always starts at the prototypes."""

    prototype_head: str = "always"

    def __post_init__(self):
        super().__post_init__()
        if self.prototype_head != "always":
            raise ValueError("protomaml's head always starts at the prototypes; for a head that "
                             "does so only at test, use maml with prototype_head='test'")


@register(prototype_head="always")
class ProtoMAML(MAML):
    """Proto-MAML over any Keras classifier whose last layer is a linear ``Dense`` head with a
    bias."""

    name = "protomaml"
    config_class = ProtoMAMLConfig
