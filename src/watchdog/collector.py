"""Python's cyclic garbage collector paused over a bounded piece of bulk work.

I/O: none (the interpreter's collector state only).

A batch of a recompute or a chunk of an import builds a few hundred thousand small objects that
all live until its end (facts, computed rows, stored rows, validated records). The collector runs
every 700 new container objects and, as they survive, walks ever more of the heap: a fifth of a
recompute and of an import for nothing, since none of them is in a reference cycle. Paused for one
bounded batch, then back on (if it was), what plain reference counting cannot free waits for the
next collection, so memory stays bounded by the batch.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused() -> Iterator[None]:
    """The collector off for the block, back on after it if it was on before."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
