"""The one exception type for bad user input, shared by kernels and simulator."""

__all__ = ["InputError"]


class InputError(ValueError):
    """Bad input from a user: a file, field or value that cannot be used.

    The message is one line naming what was wrong, the value received and, where
    possible, the fix. Command-line front ends turn it into exit status 2.
    """
