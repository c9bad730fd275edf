"""``tf.distribute`` strategies by name, for ``tfmeta train --strategy`` and ``tfmeta.run.train``.

* ``default``: one device (TensorFlow's default placement: the first GPU if there is one).
* ``mirrored``: ``tf.distribute.MirroredStrategy`` over every GPU of this machine, or, with
  ``cpu_devices=N`` (``--cpu-devices N``), over N logical devices the CPU is split into (how the
  multi-device path is tested without GPUs). Each replica meta-trains an equal share of the
  meta-batch; the Keras optimizer all-reduces the gradients (:mod:`tfmeta.learners.base`).

Several machines (``MultiWorkerMirroredStrategy``) and TPUs are not supported yet: their names
are refused with one clear line rather than run untested.
"""

from __future__ import annotations

from tfmeta.errors import ConfigError

STRATEGIES = ("default", "mirrored")
NOT_YET = ("multiworker", "tpu")


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
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
    return tf.distribute.MirroredStrategy(devices)
