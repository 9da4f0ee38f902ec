"""The one error type for the user's input, and its kinds.

Every `HtweatherError` has a one-line message naming the key, file or variable at fault; the
workflow and the command line print it as it is, without a traceback."""

from __future__ import annotations


class HtweatherError(Exception):
    """An error in the user's input; its message is one line and names the key or file at fault."""


class ConfigError(HtweatherError):
    """A config key with a bad value, or keys that do not fit together."""


class IngestError(HtweatherError):
    """A source that cannot be read as the config asks (missing variable, bad grid or time axis)."""


class ArtifactError(HtweatherError):
    """A file the pipeline wrote and now reads back is missing, truncated, altered, foreign or
    without its digest; the message says what to delete or rerun."""
