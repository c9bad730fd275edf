"""CPU threads for meta-training: the tasks of a meta-batch side by side, each on its share of the
cores.

A task's tensors are small (a 5-way 1-shot support set is 5 images), so splitting each of its
operations over every core costs more in synchronisation than it gains. The outer step runs
``parallel_tasks`` tasks at once (:attr:`tfmeta.learners.Learner.parallel_tasks`); giving each
operation ``cores // parallel_tasks`` threads keeps every core on useful work
(``benchmarks/throughput.py`` measures it: README, "Performance").
"""

from __future__ import annotations

import os

# Tasks of a meta-batch meta-trained side by side by default (tfmeta train --parallel-tasks).
PARALLEL_TASKS = 2


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def tasks_in_flight() -> int:
    """Tasks the outer step should run side by side under TensorFlow's current threads: cores /
    intra-op threads (1 with TensorFlow's default, where every op uses every core)."""
    import tensorflow as tf

    threads = tf.config.threading.get_intra_op_parallelism_threads()
    return max(1, available_cores() // threads) if threads > 0 else 1


def configure_threads(parallel_tasks: int) -> int | None:
    """Set TensorFlow's intra-op threads to ``max(1, cores // parallel_tasks)``; returns that
    number, or ``None`` where it leaves TensorFlow's setting alone: ``TF_NUM_INTRAOP_THREADS``
    is set (the user's choice wins), ``parallel_tasks`` is 1, or TensorFlow's runtime has already
    started in this process (the setting can only be made before: ``tfmeta train`` calls this
    first thing; in Python, call it before any TensorFlow work)."""
    if parallel_tasks <= 1 or os.environ.get("TF_NUM_INTRAOP_THREADS"):
        return None
    import tensorflow as tf

    threads = max(1, available_cores() // parallel_tasks)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    except RuntimeError:  # the runtime has started: too late, nothing changed
        return None
    return threads
