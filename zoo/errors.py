"""The one exception type that the CLI turns into a single line and exit code 2."""

# Exit code of a run stopped by Ctrl-C, as shells report a process ended by SIGINT.
EXIT_INTERRUPTED = 130


def os_error_text(error: OSError) -> str:
    """ " (FILE): REASON" of a failed file operation, for a one-line UserError."""
    where = f" ({error.filename})" if error.filename else ""
    return f"{where}: {error.strerror or error}"


class UserError(Exception):
    """A mistake in what the user asked for (a name, a file, a value); never a bug in zoo."""
