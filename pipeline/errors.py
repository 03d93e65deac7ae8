"""Errors a user can act on. Each carries one sentence (what, where, how to fix) and an exit code.

The CLI prints `str(err)` to stderr and exits with `err.exit_code`; nothing else in the pipeline
decides exit codes. Exit 2 means "your config or your data is wrong", 1 means "the run failed".
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base class: a failure the user can fix, reported without a traceback."""

    exit_code = 1


class ConfigError(PipelineError):
    """The configuration (YAML, --set, CLI flags) is invalid."""

    exit_code = 2


class DataError(PipelineError):
    """The input data is missing or malformed."""

    exit_code = 2


class RunStateError(PipelineError):
    """The requested run cannot be started or resumed in its current state."""

    exit_code = 2


class TrainingFailed(PipelineError):
    """Training itself failed (a worker raised, or the run ran out of retries)."""

    exit_code = 1
