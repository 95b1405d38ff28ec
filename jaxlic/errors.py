"""What counts as bad input (one line from the entry points, exit status 2) as opposed to a bug (a traceback).

Every jaxlic error about the user's input, files or configuration derives from ``UserError``; I/O errors on
the user's paths (``OSError``) and a missing optional package (``ImportError``) are reported the same way. Any
other exception is a bug in jaxlic: the entry points print its traceback and ask for a report.
"""
from __future__ import annotations

import sys
import traceback


class UserError(ValueError):
    """Bad input: a file, a path, a checkpoint, an option or a configuration the user gave."""


USER_ERRORS = (UserError, OSError, ImportError)


def report(prog: str, fn, *args) -> int:
    """Runs ``fn(*args)`` for an entry point: 0 on success, 2 with one line for bad input, 1 with the traceback
    and a request to report it for anything else."""
    try:
        fn(*args)
    except USER_ERRORS as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except Exception:  # a bug: show everything, and say so
        traceback.print_exc()
        print(f"{prog}: internal error: this is a bug in jaxlic, not a problem with your input; please report it "
              "with the command line and the traceback above", file=sys.stderr)
        return 1
    return 0
