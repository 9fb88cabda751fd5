"""Job logs: mlmm's records and real warnings reach the log file; known-harmless third-party noise does not."""

from __future__ import annotations

import logging
import warnings

from mlmm.logutil import setup_logging


def test_job_log_keeps_real_warnings_and_drops_harmless_ones(tmp_path):
    log_path = tmp_path / "logs" / "job.log"
    with warnings.catch_warnings():
        logger = setup_logging(log_path)
        logger.info("stage started")
        warnings.warn("The `srun` command is available on your system but is not used. HINT: ...")
        warnings.warn("Attribute 'model' is an instance of `nn.Module` and is already saved during checkpointing.")
        logging.getLogger("MDAnalysis.coordinates.AMBER").warning("netCDF4 is not available.")
        warnings.warn("SCF did not converge in frame 3")
        logging.getLogger("pyscf").warning("basis set missing for Xe")
    root = logging.getLogger()
    for handler in list(root.handlers):  # leave no job handlers behind for the other tests
        handler.close()
        root.removeHandler(handler)
    logging.captureWarnings(False)
    text = log_path.read_text()
    assert "stage started" in text
    assert "SCF did not converge in frame 3" in text and "basis set missing for Xe" in text
    assert "srun" not in text and "already saved" not in text and "netCDF4" not in text
