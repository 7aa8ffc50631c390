"""The one error type users see: a clear, one-line message naming the problem."""


class SwitchbenchError(ValueError):
    """Bad input or a failed run; the command line prints its message on one line and exits non-zero."""


def unknown(kind: str, name: str, valid) -> SwitchbenchError:
    """An error for an unknown name that lists the valid ones."""
    return SwitchbenchError(f"unknown {kind} {name!r}; valid: {', '.join(sorted(valid))}")
