"""The project's own exception types.

Every message names the file, the record and what to do about it, so a user can fix the input without reading
our code. Catch ``HrnetError`` to handle all of them.
"""

from __future__ import annotations

from collections.abc import Sequence


class HrnetError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(HrnetError):
    """A config file or ``--set`` override is malformed: unknown key, wrong type, broken invariant."""


class DataError(HrnetError):
    """An annotation file, record or image cannot be used (unreadable, malformed, inconsistent)."""


class CheckpointError(HrnetError):
    """A weights file cannot be read safely or does not fit the model."""


class TrainingError(HrnetError):
    """Training cannot go on (for example the loss became non-finite)."""


class ExportError(HrnetError):
    """An exported graph does not reproduce the PyTorch network."""


class OutputError(HrnetError):
    """An output file or folder cannot be written: read-only, full, a file in the way, or it is an input."""


class TrainingInterruptedError(TrainingError):
    """Training stopped on SIGINT or SIGTERM after saving a resumable checkpoint; ``signal`` is the signal's
    number (the command exits with 128 + it, as a shell reports a process killed by it)."""

    def __init__(self, message: str, signal: int):
        super().__init__(message)
        self.signal = signal


class DownloadError(HrnetError):
    """A named weights file cannot be downloaded or fails its checksum (``hrnet.hub.registry``)."""


class WeightsUnavailableError(DownloadError):
    """Registered weights files that are not in the cache and cannot be downloaded (offline, say). ``missing``
    holds (name, what failed) for each; the message lists them one a line and says what to do."""

    def __init__(self, message: str, missing: Sequence[tuple[str, str]]):
        super().__init__(message)
        self.missing = tuple(missing)
