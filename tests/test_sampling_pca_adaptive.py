"""PCA-based sampling (round trip, range, filter) and adaptive sampling (CVs, coverage, Frames)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import embedding_with, sampler_with
from mlmm.frames import qm_mask, validate_frame
from mlmm.sampling.adaptive import internal_cvs, sample_adaptive
from mlmm.sampling.md_sampler import sample_xtb_md
from mlmm.sampling.pca import fit_pca, sample_pca

from test_sampling_modes import small_system


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    return small_system(tmp_path_factory.mktemp("pca"), n_waters=8)


@pytest.fixture(scope="module")
def trajectory(system):
    sampler = sampler_with("xtb_md", n_frames=25, stride=4, equilibration_steps=10, timestep=0.5, temperature=400.0,
                           friction=0.01, seed=5)
    return sample_xtb_md(system, sampler, embedding_with(cutoff=4.0))


def test_pca_round_trip(trajectory):
    """All components reconstruct the aligned frames; k components leave exactly the dropped variance."""
    coords = np.array([f.positions[:9] for f in trajectory])
    model = fit_pca(coords, trajectory[0].get_chemical_symbols()[:9])
    full = model.reconstruct(model.projections)
    np.testing.assert_allclose(full, model.aligned, atol=1e-4)
    np.testing.assert_allclose(model.project(model.aligned), model.projections, atol=1e-4)
    # alignment is rigid: internal distances of each frame are unchanged
    d = lambda x: np.linalg.norm(x[:, :, None] - x[:, None], axis=-1)  # noqa: E731
    np.testing.assert_allclose(d(model.aligned), d(coords), atol=1e-9)
    t = len(coords)
    for k in (1, 3, 6):
        resid = ((model.aligned - model.reconstruct(model.projections[:, :k])) ** 2).sum() / (t - 1)
        assert resid == pytest.approx(model.variance[k:].sum(), rel=1e-3, abs=1e-8)
    assert np.all(np.diff(model.variance) <= 1e-9)


def test_pca_sampling_extends_range_and_filters(trajectory):
    frames, stats = sample_pca(trajectory, sampler_with("pca", n_frames=12, n_components=2, extend=1.6, seed=1,
                                                        min_distance=0.7))
    assert len(frames) == 12
    proj = stats["trajectory_projections"]
    lo, hi = proj.min(axis=0), proj.max(axis=0)
    samples = stats["sample_projections"]
    half = 0.5 * (hi - lo) * 1.6
    assert np.all(np.abs(samples - 0.5 * (lo + hi)) <= half + 1e-12)
    assert np.any((samples < lo) | (samples > hi))  # some beyond the sampled range
    sources = {f.info["source"] for f in trajectory}
    for f in frames:
        validate_frame(f)
        assert f.info["sampler"] == "pca" and f.info["source"].split("env=")[1] in sources
        mask = qm_mask(f)
        d = np.linalg.norm(f.positions[mask][:, None] - f.positions[None], axis=-1)
        assert np.sort(d, axis=1)[:, 1].min() >= 0.7
    with pytest.raises(RuntimeError, match="pass min_distance"):
        sample_pca(trajectory, sampler_with("pca", n_frames=3, n_components=2, extend=1.0, seed=1, min_distance=5.0))


def test_internal_cvs_match_ase(trajectory):
    f = trajectory[3]
    got = internal_cvs(f.positions[:9], [[0, 2], [0, 1, 2], [0, 1, 2, 3]])
    assert got[0] == pytest.approx(f.get_distance(0, 2))
    assert got[1] == pytest.approx(f.get_angle(0, 1, 2))
    ase_dihedral = f.get_dihedral(0, 1, 2, 3)
    assert got[2] == pytest.approx((ase_dihedral + 180.0) % 360.0 - 180.0, abs=1e-6)


def test_adaptive_sampling(system):
    sampler = sampler_with("adaptive", cvs=[[0, 1, 2, 3], [0, 1, 2]], n_frames=8, n_walkers=2, steps=30, stride=5,
                           max_rounds=3, min_growth=0.0, bin_width_ang=0.05, bin_width_deg=5.0, timestep=0.5,
                           temperature=500.0, friction=0.01, seed=2)
    frames, stats = sample_adaptive(system, sampler, embedding_with(cutoff=4.0))
    cov = stats["coverage_per_round"]
    assert len(cov) >= 2 and np.all(np.diff(cov) >= 0) and cov[-1] > cov[0]
    assert len(stats["cv_values"]) == len(cov) * 2 * 6  # rounds x walkers x (steps / stride)
    assert len(frames) == 8
    cvs = np.array([f.info["cv"] for f in frames])
    keys = {tuple(np.floor(c / 5.0).astype(int)) for c in cvs}
    assert len(keys) == 8  # one frame per bin, rarest bins first
    for f in frames:
        validate_frame(f)
        assert f.info["sampler"] == "adaptive"
        np.testing.assert_allclose(internal_cvs(f.positions[:9], [[0, 1, 2, 3], [0, 1, 2]]), f.info["cv"], atol=1e-6)
