"""ANIL: Almost No Inner Loop (Raghu, Raghu, Bengio & Vinyals, ICLR 2020, arXiv:1909.09157).

MAML with the inner loop restricted to the head (the model's last layer with weights)::

    body, head = theta
    head_i = head - alpha * grad_head L_support_i(body, head)       # inner loop: the head only
    theta <- theta - beta * grad_theta sum_i L_query_i(body, head_i) # outer loop: body and head

The body gets no inner update: it is a feature extractor meta-learned through the outer loop. The
outer gradient is second order through the head's updates (``first_order`` drops that term).
"""

from __future__ import annotations

from tfmeta.learners.inner import sgd_inner_loop
from tfmeta.learners.maml import MAML
from tfmeta.learners.registry import register


@register
class ANIL(MAML):
    """ANIL over any Keras classifier whose last weighted layer is the head."""

    name = "anil"

    @property
    def head_size(self) -> int:
        """How many of the model's trainable variables (the last ones) belong to the head."""
        for layer in reversed(self.model.layers):
            if layer.trainable_variables:
                head = {id(v) for v in layer.trainable_variables}
                tail = [id(v) for v in self.model.trainable_variables[-len(head):]]
                if set(tail) != head:
                    raise ValueError(f"the head layer '{layer.name}' must own the model's last "
                                     "trainable variables")
                return len(head)
        raise ValueError("the model has no trainable head layer")

    def inner_loop(self, theta, x, y, steps, differentiable=True, learning_rate=None):
        body, head = list(theta[:-self.head_size]), list(theta[-self.head_size:])
        head = sgd_inner_loop(self.forward, head, x, y, steps,
                              learning_rate or self.config.inner_lr,
                              fixed=body, differentiable=differentiable,
                              first_order=self.config.first_order, loss_fn=self.inner_loss,
                              loss_scale=self.inner_loss_scale(),
                              recompute=self.config.recompute_inner)
        return body + head
