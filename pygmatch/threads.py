"""How many torch threads the learned stages run on, and a block that runs with that many."""
from __future__ import annotations

import contextlib
import numbers

import torch

from .errors import PygmatchError

# One, because on a CPU shared with another busy process torch's default (one thread per core)
# collapses: its OpenMP threads spin-wait for each other at every parallel region, and the one that
# shares a core with the other process stalls all the others. Ask for more on a machine of your
# own; ``OMP_WAIT_POLICY=PASSIVE`` (set before torch is imported) is the other lever. Measured by
# ``python -m benchmarks.threads``.
DEFAULT_THREADS = 1


def check_threads(threads) -> int | None:
    """``threads`` as an int, or None (keep torch's setting); anything else is a one-line error."""
    if threads is None or (isinstance(threads, numbers.Integral) and not isinstance(threads, bool) and threads >= 1):
        return None if threads is None else int(threads)
    raise PygmatchError(f"threads must be an integer >= 1 (or None to keep torch's setting), got {threads!r}")


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run the block with ``torch.set_num_threads(n)``, then restore the previous count
    (``None``: leave torch's setting alone). Process-wide while it lasts, as torch's setting is."""
    before = torch.get_num_threads()
    if n is None or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
