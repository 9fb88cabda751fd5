"""xTB/MM sampler: valid Frames at the requested steps, written and read back."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import DEMO, embedding_with, sampler_with, solute_with_nearest_waters
from mlmm.frames import read_frames, validate_frame, write_frames
from mlmm.sampling.md_sampler import sample_xtb_md
from mlmm.system import System


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> System:
    """Ethanol + its 30 nearest waters from the demo box, written as a non-periodic PDB."""
    system = solute_with_nearest_waters(DEMO, "ETH", 30, tmp_path_factory.mktemp("small") / "eth30.pdb")
    assert len(system.atoms) == 9 + 3 * 30 and not system.atoms.pbc.any()
    return system


def test_sampler_emits_valid_frames(small, tmp_path):
    sampler = sampler_with("xtb_md", n_frames=3, stride=4, equilibration_steps=4, timestep=0.5, temperature=300.0,
                           friction=0.01, seed=11)
    frames = sample_xtb_md(small, sampler, embedding_with(cutoff=3.5))
    assert len(frames) == 3
    for k, frame in zip((8, 12, 16), frames):
        validate_frame(frame)
        assert frame.info["sampler"] == "xtb_md" and frame.info["iteration"] == 0 and frame.info["seed"] == 11
        assert frame.info["source"] == f"{small.source}:step{k}"
        assert frame.get_chemical_symbols()[:9] == small.atoms.get_chemical_symbols()[:9]
        assert abs(frame.get_initial_charges().sum()) < 1e-9
        assert 9 < len(frame) < len(small.atoms)  # 3.5 Å cut keeps some of the 30 waters
    assert not np.allclose(frames[0].positions[:9], frames[1].positions[:9])
    assert write_frames(tmp_path / "f.extxyz", frames) == 3
    back = read_frames(tmp_path / "f.extxyz")
    assert np.allclose(back[2].positions, frames[2].positions)
