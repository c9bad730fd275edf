"""Run by tests/test_faults.py and tests/test_multiworker.py in fresh processes (logical devices
and TF_CONFIG must be set before TensorFlow starts): meta-train Prototypical Networks on glyphs with
the trainer of tests/test_faults.py, whose meta-batch 2 has NaN support images and meta-batch 3
support images scaled by 1e30 (a finite loss, BatchNorm's moving variance overflows), under
STRATEGY, and print one JSON line:

* ``nan_unchanged`` / ``overflow_unchanged``: whether one such meta-step, taken by hand after step
  2, left every variable of the learner (weights, optimizer state, moving statistics) exactly as
  it was, and its ``skipped`` figure;
* the fit's step and skipped count, and whether every value of every checkpoint written is finite.

    python tests/nonfinite_check.py default|mirrored|multiworker OUT_DIR
"""

import json
import os
import sys

import numpy as np

name, out = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.dirname(__file__))

from tfmeta.distribute import is_chief, make_strategy  # noqa: E402

strategy = make_strategy(name, cpu_devices=2 if name == "mirrored" else None)
chief = is_chief(strategy)

import tensorflow as tf  # noqa: E402
from test_faults import _trainer  # noqa: E402

faults = {"nan_at": 2, "overflow_at": 3}
trainer = _trainer(out, strategy=strategy, chief=chief, **faults)
trainer.fit(until=2)
learner, result = trainer.learner, {"replicas": 1 if strategy is None else
                                    strategy.num_replicas_in_sync}


def state():
    """Every variable of the learner, listed here, not by the learner."""
    return [np.array(v.numpy()) for v in [*learner.model.variables, *learner.optimizer.variables,
                                          *[v for part in learner.parts.values()
                                            for v in part.variables]]]


for case in faults:
    before = state()
    batch = next(iter(trainer.train_sampler.dataset(faults[case], 1)))
    metrics = learner.meta_train_step(batch)
    result[case.replace("_at", "_skipped")] = float(metrics.get("skipped", 0.0))
    result[case.replace("_at", "_unchanged")] = all(
        np.array_equal(a, b, equal_nan=True) for a, b in zip(before, state()))
fit = _trainer(out, strategy=strategy, chief=chief, **faults).fit()
result.update(step=fit["step"], skipped=fit["skipped"])
if chief:
    finite = []
    for kind in ("latest", "best"):
        for path in tf.train.get_checkpoint_state(
                os.path.join(out, "checkpoints", kind)).all_model_checkpoint_paths:
            reader = tf.train.load_checkpoint(path)
            finite.append(all(np.all(np.isfinite(reader.get_tensor(k)))
                              for k, d in reader.get_variable_to_dtype_map().items()
                              if d.is_floating))
    result["checkpoints_finite"] = finite
print(json.dumps(result), flush=True)
