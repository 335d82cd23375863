"""How many rows each circuit call takes: the batch shapes compiled, and the plan for a request.

A model is compiled for several batch shapes (1, 4, 16... rows) sharing one key set, so that a
request of any size pays for about its own rows: a one-row request runs the one-row function
rather than a padded 16-row one. The plan covers ``n_rows`` with full calls of the largest shape,
then the cheapest mix of shapes for the remainder, counting each call's fixed cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

#: Fixed cost of one circuit call, in rows' worth of work (measured 0.15–0.35 here: keyswitch
#: and bootstrap set-up, encryption of the call's header, Python overhead).
CALL_OVERHEAD_ROWS = 0.3


def batch_sizes_for(batch_size: int) -> tuple[int, ...]:
    """The batch shapes compiled for a largest batch of ``batch_size`` rows: powers of 4 below
    it, and itself (16 → (1, 4, 16); 10 → (1, 4, 10))."""
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
    sizes, size = {batch_size}, 1
    while size < batch_size:
        sizes.add(size)
        size *= 4
    return tuple(sorted(sizes))


@dataclass(frozen=True)
class Call:
    """One circuit call: rows ``[start, stop)`` of the request, on the ``size``-row function
    (``size - (stop - start)`` padding rows)."""

    start: int
    stop: int
    size: int

    @property
    def n_rows(self) -> int:
        return self.stop - self.start


@lru_cache(maxsize=256)
def _remainder_plan(remainder: int, sizes: tuple[int, ...]) -> tuple[int, ...]:
    """The shapes whose calls cover ``remainder`` rows at the least cost (padding allowed)."""
    best: list[tuple[float, tuple[int, ...]]] = [(0.0, ())]
    for rows in range(1, remainder + 1):
        options = []
        for size in sizes:
            cost, shapes = best[max(rows - size, 0)]
            options.append((cost + CALL_OVERHEAD_ROWS + size, shapes + (size,)))
        best.append(min(options))
    return tuple(sorted(best[remainder][1], reverse=True))


def plan_calls(n_rows: int, sizes: tuple[int, ...]) -> list[Call]:
    """Circuit calls covering ``n_rows`` rows with the compiled batch ``sizes``."""
    largest = max(sizes)
    shapes = [largest] * (n_rows // largest)
    shapes += _remainder_plan(n_rows % largest, tuple(sorted(sizes)))
    calls, start = [], 0
    for size in shapes:
        stop = min(start + size, n_rows)
        calls.append(Call(start, stop, size))
        start = stop
    return calls
