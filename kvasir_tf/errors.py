"""User-facing errors and the CLI wrapper that turns them into one-line messages."""
import functools
import sys


class KvasirError(Exception):
    """An error caused by the user's input (file, flag, dataset) with a message saying the fix.

    CLIs print ``error: <message>`` and exit with status 2 instead of a traceback.
    """


class DataError(KvasirError):
    """A dataset or image problem: message names the file and what to do."""


def first_line(exc) -> str:
    """The first line of an exception's message, for a one-line error."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def cli(main_fn):
    """Decorate a ``main(argv=None) -> int`` so KvasirError becomes a one-line error, exit 2."""

    @functools.wraps(main_fn)
    def wrapper(argv=None, **kwargs):
        import kvasir_tf
        kvasir_tf.quiet_python_logs()
        try:
            return main_fn(argv, **kwargs)
        except KvasirError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130

    return wrapper
