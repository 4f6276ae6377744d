"""User-facing errors.

Every problem caused by the user's input (an unknown spec, a missing path, a bad option value) is raised
as :class:`VitplastError`. The command line turns it into a single ``error: ...`` line on stderr and exit
code 2, without a traceback.
"""

from __future__ import annotations

import sys


class VitplastError(Exception):
    """A problem with the user's input; its message is one line that says what to fix."""


def warn(message: str) -> None:
    """Print one ``warning: ...`` line on stderr (for results that are computed but need a caveat; the
    caller also records the message in its result files)."""
    print(f"warning: {message}", file=sys.stderr)
