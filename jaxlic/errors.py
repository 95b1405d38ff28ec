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


class DecodeError(UserError):
    """A file cannot be decoded by this codec (wrong model or checkpoint, corrupt data)."""


class IndexMismatch(DecodeError):
    """The decoder's coding-table indexes differ from the encoder's: its machine computed the entropy
    parameters differently. Raised before the step's symbols are decoded; nothing is reconstructed."""

    def __init__(self, where: str, margin: float = 0.0):
        super().__init__(
            f"{where}: this machine's coding-table indexes differ from the encoder's (checked before decoding "
            "it; nothing was reconstructed). The entropy parameters came out differently here (another CPU "
            "instruction set, thread count, XLA version, or GPU / TPU kernels) and lie too close to a table "
            "boundary for this file" + (f", by more than its robust margin {margin:.3g}" if margin else
                                        ", which was written without a robust margin (--robust-margin 0)")
            + "; or the file was damaged or altered in a way its checksum did not catch (a rewritten header "
            "with a valid CRC). If the file is intact and came from another machine, compress it again there "
            "with a larger --robust-margin")


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
