"""The errors tfmeta raises for bad input: each message is one line that says what is wrong and
where. The CLI prints them as ``tfmeta: error: ...`` and exits with code 2."""


class TfmetaError(Exception):
    """Base of tfmeta's errors."""


class DataError(TfmetaError, ValueError):
    """Bad data: a missing file, an unreadable image, too few classes or images."""


class ConfigError(TfmetaError, ValueError):
    """A run or learner configuration that cannot work: an unknown option or name, a value out of
    range, parts that do not fit together."""


class ExportError(TfmetaError, RuntimeError):
    """An export that could not be written or did not reproduce the Keras model's answers."""


class WorkerLost(TfmetaError, RuntimeError):
    """A worker of a multi-worker run stopped or could not be reached: the run stops (the CLI
    exits with code 1); starting every worker again resumes from the last checkpoint."""


class TrainingStopped(TfmetaError, RuntimeError):
    """Meta-training stopped before its last step: a signal (SIGINT, SIGTERM) after which the
    latest checkpoint was saved, or a non-finite meta-loss that was kept out of every checkpoint.
    ``signal`` is the signal's number, or ``None``."""

    def __init__(self, message: str, signal_number: int | None = None):
        super().__init__(message)
        self.signal = signal_number


__all__ = ["ConfigError", "DataError", "ExportError", "TfmetaError", "TrainingStopped",
           "WorkerLost"]
