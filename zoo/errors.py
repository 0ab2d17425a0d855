"""The one exception type that the CLI turns into a single line and exit code 2."""

# Exit code of a run stopped by Ctrl-C, as shells report a process ended by SIGINT.
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """A mistake in what the user asked for (a name, a file, a value); never a bug in zoo."""
