"""The one error type users see.

Every bad input (a missing file, a corrupted IDX, data out of range for the chosen likelihood, a
config that does not match its weights) raises a subclass of :class:`VaekitError` with a one-line
message that names the problem and the fix. The CLI turns these into one line on stderr and exit
code 2; anything else is a bug in vaekit and keeps its traceback.
"""

from __future__ import annotations


class VaekitError(ValueError):
    """A problem with the user's input or files, described in one line."""


class DataError(VaekitError):
    """Data that cannot be read or does not suit the model (file, format, shape, range)."""


class ConfigError(VaekitError):
    """An option or a saved configuration that is invalid."""


class ModelFileError(VaekitError):
    """A saved model or detector that is missing, corrupt or unsafe to load."""
