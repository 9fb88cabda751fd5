"""Logging set-up shared by the rule scripts: one log file per job (Snakemake `log:`) plus stderr."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Third-party warnings that say nothing about a run and would worry a newcomer in every job log:
#: Lightning's hints about SLURM (mlmm's jobs are single-process; Snakemake submits them), about
#: schnetpack's task saving its model as a hyper-parameter, and its own deprecated pytree call.
HARMLESS_WARNINGS = (
    r"The `srun` command is available on your system but is not used",
    r"Attribute 'model' is an instance of `nn.Module` and is already saved",
    r"Skipping 'outputs' parameter because it is not possible to safely dump to YAML",
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
)
#: Loggers whose import-time warnings do not apply (MDAnalysis: mlmm writes no AMBER NetCDF files).
QUIET_LOGGERS = ("MDAnalysis.coordinates.AMBER",)


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
    for message in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    return logger
