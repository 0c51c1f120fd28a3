"""What every command prints when it cannot do what was asked: one line on stderr, exit status 2."""

from __future__ import annotations

import sys


def fail(message: str) -> int:
    print(f"llm-backend: {message}", file=sys.stderr)
    return 2
