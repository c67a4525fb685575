"""Typed one-line errors for bad simulator input; only the CLI turns them into exit codes."""

from kernels.errors import InputError

__all__ = ["AccelsimError", "ConfigError", "WorkloadError"]


class AccelsimError(InputError):
    """Base of accelsim's input errors; the message names the file, field and value."""


class ConfigError(AccelsimError):
    """An architecture config that cannot be used."""


class WorkloadError(AccelsimError):
    """A workload (layer, CSV row, network) that cannot be used."""
