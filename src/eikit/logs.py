"""Logging set-up for the frontend and the workers: one line per event, no noise."""

from __future__ import annotations

import logging
import sys
from typing import Optional

FORMAT = "%(asctime)s %(levelname)s %(process)d %(role)s %(name)s: %(message)s"


class _RoleFilter(logging.Filter):
    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def filter(self, record: logging.LogRecord) -> bool:
        record.role = self.role
        return True


def configure(level: str, role: str = "frontend", stream: Optional[object] = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(_RoleFilter(role))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # uvicorn's own start-up chatter is useful once; its per-request lines are not.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
