"""The one exception type that the CLI turns into a single line and exit code 2."""

# Exit code of a run stopped by Ctrl-C, as shells report a process ended by SIGINT.
EXIT_INTERRUPTED = 130


def os_error_text(error: OSError) -> str:
    """ " (FILE): REASON" of a failed file operation, for a one-line UserError."""
    where = f" ({error.filename})" if error.filename else ""
    return f"{where}: {error.strerror or error}"


class UserError(Exception):
    """A mistake in what the user asked for (a name, a file, a value); never a bug in zoo."""


# An error message echoes what the user gave: long values are cut so it stays one line.
MAX_MESSAGE_CHARS = 600


def first_line(error: BaseException) -> str:
    """The first non-blank line of an exception's message, or its type's name when it has none
    (a library's multi-line error told in one line)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def one_line(message: str) -> str:
    """The message on one line, at most MAX_MESSAGE_CHARS long."""
    flat = " ".join(message.split())
    if len(flat) <= MAX_MESSAGE_CHARS:
        return flat
    return f"{flat[: MAX_MESSAGE_CHARS - 40]} ... ({len(flat) - MAX_MESSAGE_CHARS + 40:,} more characters)"
