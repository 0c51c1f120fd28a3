"""Work measured by counting, not by the clock: the team runs no timed assertions on a shared machine.

``calls`` counts the Python and C function calls a function makes (generators resumed included), through
``sys.setprofile``: the same input always gives the same count, and an algorithm that is quadratic in its input
makes 16 times the calls on an input 4 times larger, where a linear one makes about 4 times.  Work inside one C
call (a regular expression backtracking) is not seen: those readers are timed in ``bench/readers.py``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

LINEAR_BOUND = 5.0  # calls(4 n) / calls(n) for an algorithm linear in n, with room for per-call constants


def calls(function: Callable[[], Any]) -> int:
    counted = 0

    def count(_frame: Any, event: str, _arg: Any) -> None:
        nonlocal counted
        if event in ("call", "c_call"):
            counted += 1

    previous = sys.getprofile()
    sys.setprofile(count)
    try:
        function()
    finally:
        sys.setprofile(previous)
    return counted


def growth(make: Callable[[int], Callable[[], Any]], size: int) -> float:
    """calls(4 × size) / calls(size) for the function ``make`` returns for each size."""
    return calls(make(4 * size)) / calls(make(size))
