"""What every CLI command prints through: one console rule and the one CSV dialect. I/O: stdout.

On a terminal rich fits tables to the window; when stdout is a pipe or a file (a script, `> x.txt`,
a test) nothing is cut at 80 columns: tables take the width they need, headers are never
truncated, and long lines are not wrapped.
"""

from __future__ import annotations

import sys

from rich.console import Console

# Wide enough for any table the CLI prints; rich only uses the width a table needs.
PIPE_WIDTH = 1000


def console(*, stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=PIPE_WIDTH, soft_wrap=True)


def write_csv(text: str) -> None:
    """CSV to stdout as the reports write it to a file: UTF-8 with a byte-order mark (Danish Excel)."""
    sys.stdout.flush()
    sys.stdout.buffer.write(("\ufeff" + text).encode("utf-8"))
    sys.stdout.buffer.flush()
