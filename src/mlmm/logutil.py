"""Logging set-up shared by the rule scripts: one log file per job (Snakemake `log:`) plus stderr."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(log_path: str | Path | None, level: int = logging.INFO) -> logging.Logger:
    """Send mlmm's log records to ``log_path`` (overwritten) and to stderr; return the 'mlmm' logger."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path is not None:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w"))
    for handler in handlers:
        handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logger = logging.getLogger("mlmm")
    logger.setLevel(level)
    logging.captureWarnings(True)
    return logger
