"""The command line's stderr without TensorFlow's C++ start-up lines.

TensorFlow writes lines such as ``WARNING: All log messages before absl::InitializeLog() is
called are written to STDERR``, ``I0000 ... port.cc:153] oneDNN custom operations are on`` and,
on a machine without a GPU, ``E0000 ... cuda_platform.cc:52] failed call to cuInit: INTERNAL:
CUDA error`` before a command's first line. They come from absl's logging of libraries loaded
by ``import keras`` and TensorFlow's runtime, which ``TF_CPP_MIN_LOG_LEVEL`` does not silence,
and they read as errors to a new user. :func:`cpp_log_lines_hidden` routes the process's stderr
(file descriptor 2, where C++ writes) through a pipe and drops the lines in that format; Python's
warnings, tfmeta's errors and everything else pass through unchanged, in order.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading

# absl / TSL log lines: severity, MMDD, time, thread id, file:line] message; and absl's notice.
CPP_LOG_LINE = re.compile(rb"^([IWEF]\d{4} \d\d:\d\d:[\d.]+\s+\d+ \S+:\d+\] |WARNING: All log "
                          rb"messages before absl::InitializeLog\(\) is called)")


@contextlib.contextmanager
def cpp_log_lines_hidden():
    """Within the block, lines written to file descriptor 2 that are TensorFlow's C++ log lines
    are dropped; the rest reach the original stderr."""
    sys.stderr.flush()
    read, write = os.pipe()
    original = os.dup(2)
    os.dup2(write, 2)
    os.close(write)

    def forward():
        with os.fdopen(read, "rb") as source:
            for line in source:
                if not CPP_LOG_LINE.match(line):
                    os.write(original, line)

    thread = threading.Thread(target=forward, name="tfmeta-stderr", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(original, 2)  # the pipe's last writer in this process: the thread reads to its end
        thread.join(timeout=5)
        os.close(original)
