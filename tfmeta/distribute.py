"""``tf.distribute`` strategies by name, for ``tfmeta train --strategy`` and ``tfmeta.run.train``.

* ``default``: one device (TensorFlow's default placement: the first GPU if there is one).
* ``mirrored``: ``tf.distribute.MirroredStrategy`` over every GPU of this machine, or, with
  ``cpu_devices=N`` (``--cpu-devices N``), over N logical devices the CPU is split into (how the
  multi-device path is tested without GPUs). Each replica meta-trains an equal share of the
  meta-batch; their gradients are all-reduced and applied behind the finiteness guard
  (:mod:`tfmeta.learners.base`).

* ``multiworker``: ``tf.distribute.MultiWorkerMirroredStrategy`` over the machines (workers)
  that ``TF_CONFIG`` lists, each with its devices. Start the same ``tfmeta train`` command on
  every worker, each with its own ``TF_CONFIG`` (the cluster, and this worker's ``task``), all
  with the same ``--out`` on a shared file system: only the chief (the ``chief`` task, or worker 0
  when there is none) writes the run directory; the other workers write their checkpoints to a
  temporary folder that they delete, and read the chief's to resume. A worker that stops makes
  the others fail after ``timeout_seconds`` (:data:`COLLECTIVE_TIMEOUT`) instead of waiting
  forever; start them all again to resume from the last checkpoint.

TPUs are not supported yet: the name is refused with one clear line rather than run untested.
"""

from __future__ import annotations

import contextlib
import json
import os

from tfmeta.errors import ConfigError, WorkerLost

STRATEGIES = ("default", "mirrored", "multiworker")
NOT_YET = ("tpu",)
COLLECTIVE_TIMEOUT = 300  # seconds a collective waits for the other workers before failing


def split_cpu(devices: int) -> None:
    """Split the CPU into ``devices`` logical devices; must run before TensorFlow starts its
    runtime (before any tensor is made)."""
    import tensorflow as tf

    if devices < 1:
        raise ConfigError(f"cpu_devices must be at least 1, got {devices}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
    except RuntimeError:
        if len(tf.config.list_logical_devices("CPU")) != devices:
            raise ConfigError("the CPU can only be split into devices before TensorFlow starts: "
                              "give cpu_devices first (tfmeta train --cpu-devices N)") from None


def make_strategy(name: str = "default", cpu_devices: int | None = None):
    """The strategy ``name`` (``None`` for ``default``)."""
    import tensorflow as tf

    if name in NOT_YET:
        raise ConfigError(f"strategy '{name}' is not supported yet: use "
                          f"{' or '.join(STRATEGIES)} (one machine, one or several devices)")
    if name not in STRATEGIES:
        raise ConfigError(f"unknown strategy '{name}': use {' or '.join(STRATEGIES)}")
    if cpu_devices is not None:
        split_cpu(cpu_devices)
    if name == "default":
        return None
    if name == "multiworker":
        return _multiworker()
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
    return tf.distribute.MirroredStrategy(devices)


def _multiworker():
    import tensorflow as tf

    try:
        cluster = json.loads(os.environ.get("TF_CONFIG") or "{}")
        workers = cluster["cluster"]["worker"] + cluster["cluster"].get("chief", [])
        task = cluster["task"]["type"], int(cluster["task"]["index"])
    except (ValueError, KeyError, TypeError):
        raise ConfigError("strategy 'multiworker' reads the cluster from TF_CONFIG: set it to "
                          '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", '
                          '"index": I}} on every worker (README, Scaling out)') from None
    if not workers or task[0] not in ("worker", "chief"):
        raise ConfigError(f"TF_CONFIG: this task is {task[0]} {task[1]} of a cluster with "
                          f"workers {workers}; tfmeta runs on 'worker' and 'chief' tasks")
    implementation = (tf.distribute.experimental.CommunicationImplementation.NCCL
                      if tf.config.list_physical_devices("GPU") else
                      tf.distribute.experimental.CommunicationImplementation.RING)
    return tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=tf.distribute.experimental.CommunicationOptions(
            implementation=implementation, timeout_seconds=COLLECTIVE_TIMEOUT))


def is_multiworker(strategy) -> bool:
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy) -> bool:
    """Whether this process writes the run directory: always, except for the non-chief workers
    of a multi-worker strategy (TensorFlow's convention: the ``chief`` task, or worker 0 when the
    cluster has no chief)."""
    if not is_multiworker(strategy):
        return True
    resolver = strategy.cluster_resolver
    if not resolver.task_type:  # no TF_CONFIG: one worker
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def barrier(strategy) -> None:
    """Return once every worker of a multi-worker ``strategy`` has called this (a collective sum
    of ones); a no-op otherwise."""
    import tensorflow as tf

    if is_multiworker(strategy):
        strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.constant(1.0)),
                        axis=None)


@contextlib.contextmanager
def lost_workers_reported(strategy, out_dir: str):
    """Under a multi-worker ``strategy``, the errors of collectives whose peer stopped (a killed
    or unreachable worker, a collective timeout) become one :class:`WorkerLost` line that says
    how to resume; other strategies are left alone."""
    import tensorflow as tf

    if not is_multiworker(strategy):
        yield
        return
    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
            tf.errors.CancelledError, tf.errors.AbortedError) as err:
        latest = tf.train.latest_checkpoint(os.path.join(out_dir, "checkpoints", "latest"))
        lines = [line for line in str(err.message or "").splitlines() if line.strip()
                 and not line[0].isspace() and not line.startswith(("Graph execution", "Detected"))]
        cause = lines[0][:200] if lines else ""
        raise WorkerLost(
            f"a worker of the cluster stopped or cannot be reached ({type(err).__name__}: "
            f"{cause}); start every worker again with the same command to resume from "
            f"{latest or 'the start (no checkpoint yet)'}") from None
