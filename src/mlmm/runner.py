"""The one way a rule runs a stage: ``run_stage(snakemake, stage, **arguments)``.

Every rule script is one call of :func:`run_stage`. It does what each job needs the same way:

* logging of the 'mlmm' loggers to the rule's ``log[0]`` (overwritten) and to stderr;
* thread limits from ``snakemake.threads`` (:func:`mlmm.jobs.set_threads`);
* any exception's full traceback written to the rule's log file (the file Snakemake's
  "check log file(s)" points to) before it is re-raised, so the job still fails;
* the record the stage returns (a :class:`mlmm.records.Record`) written atomically to
  ``record_out``.

Stage functions stay plain (paths and values in, a record out) and callable without Snakemake.
"""

from __future__ import annotations

import logging
import os
import traceback
from pathlib import Path
from typing import Any, Callable, TypeVar

from mlmm.jobs import set_threads
from mlmm.logutil import setup_logging

T = TypeVar("T")

log = logging.getLogger("mlmm.runner")


def run_stage(smk: Any, stage: Callable[..., T], /, *, record_out: str | None = None, **arguments: Any) -> T:
    """Run ``stage(**arguments)`` as the job of the rule described by the ``snakemake`` object ``smk``.

    ``record_out``: path the returned record is written to (atomically); required when the stage
    returns one, refused when it returns none.
    """
    log_path = smk.log[0] if len(smk.log) else None
    setup_logging(log_path)
    set_threads(int(smk.threads))
    rule = getattr(smk, "rule", stage.__name__)
    try:
        result = stage(**arguments)
        if (result is None) != (record_out is None):
            raise TypeError(f"rule {rule}: stage {stage.__name__} returned {type(result).__name__}"
                            f" but record_out is {record_out!r}")
        if result is not None:
            result.to_json(record_out)  # type: ignore[attr-defined]
    except BaseException as exc:
        log.error("rule %s failed: %s: %s", rule, type(exc).__name__, exc)
        if log_path is not None:
            _append_traceback(log_path, rule)
        raise
    return result


def _append_traceback(log_path: str, rule: str) -> None:
    """Append the traceback of the exception being handled to the rule's log file (through the
    log's own file handler, so later log records cannot overwrite it)."""
    text = f"Traceback of rule {rule}:\n{traceback.format_exc()}"
    target = os.path.abspath(log_path)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler) and handler.baseFilename == target and handler.stream:
            handler.acquire()
            try:
                handler.stream.write(text)
                handler.flush()
            finally:
                handler.release()
            return
    with Path(log_path).open("a") as fh:
        fh.write(text)
