"""Progress of long steps (evaluating 600 episodes, decoding thousands of image files): what the
``"tfmeta.progress"`` logger lets through.

With that logger enabled for INFO (the command line, unless ``--no-progress`` or ``--quiet``) a
terminal gets a live bar and anything else (a log file, a pipe) a plain line at each quarter, never
terminal codes; disabled (the library's default: Python logs warnings only), nothing is shown.
"""

from __future__ import annotations

import logging
import sys

LOGGER = "tfmeta.progress"


class Progress:
    """``update(done)`` as ``total`` items of ``what`` get done."""

    def __init__(self, total: int, what: str):
        self.total, self.what = max(1, int(total)), what
        logger = logging.getLogger(LOGGER)
        self.enabled = logger.isEnabledFor(logging.INFO)
        self.live = self.enabled and sys.stdout.isatty()
        self.quarter = 0
        self.bar = None
        if self.live:
            import keras

            print(what)
            self.bar = keras.utils.Progbar(self.total)

    def update(self, done: int) -> None:
        done = min(int(done), self.total)
        if self.bar is not None:
            self.bar.update(done)
        elif self.enabled and 4 * done // self.total > self.quarter:
            self.quarter = 4 * done // self.total
            logging.getLogger(LOGGER).info(f"{self.what}: {done}/{self.total}")


def stage(text: str) -> None:
    """One step of a command made of a few long steps (adapting, writing a SavedModel, converting,
    verifying in a fresh process): a plain line, where progress is shown."""
    logging.getLogger(LOGGER).info(text)
