"""Logging set-up shared by the command line and the Snakemake scripts."""

from __future__ import annotations

import logging
import sys


def setup(log_file: str | None = None, *, level: int = logging.INFO) -> None:
    """Log one line per event to stderr, or to ``log_file`` (a rule's ``log:``) when given.

    With a log file, uncaught exceptions are written there too, so a failed rule's log ends with
    the reason it failed.
    """
    handler: logging.Handler = logging.FileHandler(log_file, mode="w") if log_file else logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    if log_file:
        previous = sys.excepthook

        def hook(kind, value, tb):
            logging.getLogger("soseleto").error("failed", exc_info=(kind, value, tb))
            previous(kind, value, tb)

        sys.excepthook = hook
