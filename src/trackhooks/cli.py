"""Command line (placeholder until the CLI issue lands)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("trackhooks: the command line is not built yet", file=sys.stderr)
    return 2
