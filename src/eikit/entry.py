"""What ``serve`` and ``python -m eikit`` run first: the standard library only, so the
template process starts before the frontend imports itself (eikit.server.early_template)."""

from __future__ import annotations

import sys
from typing import List, Optional


def serve_main() -> int:
    """The ``serve`` console script: what ``docker run IMAGE serve`` runs."""
    return main(["serve", *sys.argv[1:]])


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m eikit ...``."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["serve"]:
        from eikit.server import early_template

        early_template.start()
    from eikit.cli import main as cli_main

    return cli_main(args)
