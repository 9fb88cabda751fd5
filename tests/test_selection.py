"""Active-learning selection: trust window, diversity and convergence."""

import numpy as np
from ase import Atoms

from mlmm.al.selection import farthest_point_sampling, is_converged, select_frames, trust_window
from mlmm.frames import make_frame
from mlmm.settings import EmbeddingSettings


def _frame(shift: float, mm_x: float) -> Atoms:
    qm = np.array([[0.0, 0.0, 0.0], [0.96 + shift, 0.0, 0.0], [-0.24, 0.93, 0.0]])
    mm = np.array([[mm_x, 0.0, 0.0], [mm_x + 0.96, 0.0, 0.0], [mm_x - 0.24, 0.93, 0.0]])
    return make_frame(
        ["O", "H", "H"], qm, ["O", "H", "H"], mm, [-0.834, 0.417, 0.417],
        mm_molecule=[0, 0, 0], embedding=EmbeddingSettings(cutoff=10.0, switch_width=2.0), qm_charge=0, multiplicity=1, sampler="test", iteration=0, source="t", seed=0,
    )


def test_trust_window_counts() -> None:
    idx, counts = trust_window(np.array([0.01, 0.1, 0.3, 0.6, 0.05]), 0.05, 0.5)
    assert list(idx) == [1, 2]
    assert (counts.accurate, counts.candidate, counts.failed) == (2, 2, 1)


def test_fps_prefers_spread_points() -> None:
    x = np.array([[0.0], [0.1], [0.2], [5.0], [10.0]])
    assert farthest_point_sampling(x, 3, start=0) == [0, 4, 3]


def test_select_caps_and_keeps_diverse_frames() -> None:
    # 10 candidates: 9 nearly identical, 1 clearly different environment
    frames = [_frame(0.0, 3.0 + 1e-3 * i) for i in range(9)] + [_frame(0.2, 6.0)]
    sigmas = np.full(10, 0.2)
    sigmas[0] = 0.3  # most uncertain is taken first
    picked, counts = select_frames(frames, sigmas, sigma_lo=0.05, sigma_hi=0.5, max_selected=2)
    assert counts.candidate == 10
    assert picked == [0, 9]


def test_convergence_rule() -> None:
    _, counts = trust_window(np.r_[np.full(99, 0.01), 0.2], 0.05, 0.5)
    assert is_converged(counts, any_breach=False, converged_fraction=0.99)
    assert not is_converged(counts, any_breach=True, converged_fraction=0.99)
    _, counts = trust_window(np.r_[np.full(98, 0.01), 0.2, 0.2], 0.05, 0.5)
    assert not is_converged(counts, any_breach=False, converged_fraction=0.99)


def test_validation_stalled_needs_improvement_below_tolerance() -> None:
    from mlmm.al.selection import validation_stalled

    assert validation_stalled([0.2], 0.05)[0]  # one model: no trend
    assert validation_stalled([0.2, None], 0.05)[0]  # no test frames: no trend
    assert not validation_stalled([0.2, 0.15], 0.05)[0]
    assert validation_stalled([0.2, 0.195], 0.05)[0]
    assert validation_stalled([0.2, 0.25], 0.05)[0]
    _, counts = trust_window(np.full(10, 0.01), 0.05, 0.5)
    assert not is_converged(counts, any_breach=False, converged_fraction=0.99, validation_stalled=False)


def test_calibrated_scale_is_read_and_checked(tmp_path) -> None:
    import pytest

    from dataclasses import replace

    from conftest import settings_with
    from mlmm.al.stages import sigma_scale
    from mlmm.model.calibration import Calibration

    al = settings_with().al

    path = tmp_path / "calibration.json"
    Calibration(n_frames=12, scale=2.5).to_json(path)
    assert sigma_scale([str(path)], replace(al, calibrated_thresholds=True)) == 2.5
    assert sigma_scale([str(path)], replace(al, calibrated_thresholds=False)) == 1.0
    Calibration(n_frames=12, scale=-1.0).to_json(path)
    with pytest.raises(ValueError, match="calibration.json: calibration scale"):
        sigma_scale([str(path)], replace(al, calibrated_thresholds=True))
