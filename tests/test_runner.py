"""The stage runner: a failing job leaves its full traceback in the rule's log file."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import ROOT, SNAKEMAKE, make_workdir


def test_failing_rule_writes_its_traceback_into_the_rule_log(tmp_path: Path) -> None:
    """A real Snakemake run of prepare_system on a corrupt structure file: the job fails and the
    log file Snakemake names holds the traceback down to the error (not only Snakemake's stderr)."""
    work = make_workdir(tmp_path, {"system": {"structure": "broken.pdb", "qm_selection": "resname ETH", "force_field": ["amber14/tip3p.xml"]}})
    (work / "broken.pdb").write_text("ATOM  this is not a PDB record\nHETATM 12 garbage\nEND\n")
    proc = subprocess.run(
        [SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work), "--cores", "1",
         "results/system/system.json"],
        capture_output=True, text=True, timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    log = work / "results" / "logs" / "system" / "prepare_system.log"
    assert str(log.relative_to(work)) in out  # the file "check log file(s)" points to
    text = log.read_text()
    assert "rule prepare_system failed" in text
    assert "Traceback of rule prepare_system:" in text and "Traceback (most recent call last):" in text
    # the stage's own frame, from this checkout's src/ (the Snakefile exports PYTHONPATH for the jobs)
    assert f'File "{ROOT / "src" / "mlmm" / "stages.py"}", line' in text
    assert not (work / "results" / "system" / "system.json").exists()


def test_run_stage_writes_the_record_and_overwrites_the_log(tmp_path: Path) -> None:
    """run_stage with the fields Snakemake gives a script (log, threads, rule): the log of an earlier
    attempt is replaced, the returned record is written, and a record without a path is refused."""
    import logging

    import pytest

    from mlmm.model.calibration import Calibration, calibrate
    from mlmm.runner import run_stage

    class Job:  # the attributes of the `snakemake` object that run_stage reads
        log = [str(tmp_path / "job.log")]
        threads = 1
        rule = "calibrate"

    (tmp_path / "job.log").write_text("line of an earlier attempt\n")

    def stage(n: int) -> Calibration:
        logging.getLogger("mlmm.test").info("calibrating %d frames", n)
        return calibrate([0.1 * (k + 1) for k in range(n)], [0.2 * (k + 1) for k in range(n)])

    record = run_stage(Job, stage, record_out=str(tmp_path / "cal.json"), n=4)
    assert record.scale == pytest.approx(2.0) and Calibration.from_json(tmp_path / "cal.json") == record
    text = (tmp_path / "job.log").read_text()
    assert "calibrating 4 frames" in text and "earlier attempt" not in text
    with pytest.raises(TypeError, match="returned Calibration but record_out is None"):
        run_stage(Job, stage, n=4)
    assert "Traceback of rule calibrate:" in (tmp_path / "job.log").read_text()
