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


def _calibration_file(tmp_path) -> str:
    """calibration.json of a known map: 0 → 0, 0.1 → 0.2, 0.2 → 1.0 eV/Å, slope 2 beyond."""
    from mlmm.model.calibration import Calibration

    path = tmp_path / "calibration.json"
    Calibration(n_frames=12, scale=2.0, map_sigma=[0.0, 0.1, 0.2], map_error=[0.0, 0.2, 1.0]).to_json(path)
    return str(path)


def test_sigma_calibration_is_read_and_checked(tmp_path) -> None:
    """The exploring model's map when al.calibrated_thresholds (and a file), else the identity;
    a map without an inverse is an error naming the file."""
    from dataclasses import replace

    import pytest

    from conftest import settings_with
    from mlmm.al.stages import sigma_calibration
    from mlmm.model.calibration import Calibration

    al = settings_with().al
    assert al.calibrated_thresholds  # the schema default
    path = _calibration_file(tmp_path)
    x = np.array([0.05, 0.15, 0.3])
    assert sigma_calibration([path], al).apply(x) == pytest.approx([0.1, 0.6, 1.2])
    assert sigma_calibration([path], replace(al, calibrated_thresholds=False)).apply(x) == pytest.approx(x)
    assert sigma_calibration([], al).apply(x) == pytest.approx(x)
    Calibration(n_frames=12, scale=2.5).to_json(path)  # written before the map: scale·σ
    assert sigma_calibration([path], al).apply(x) == pytest.approx(2.5 * x)
    Calibration(n_frames=12, scale=-1.0).to_json(path)
    with pytest.raises(ValueError, match="calibration.json: calibration scale"):
        sigma_calibration([path], al)
    Calibration(n_frames=12, map_sigma=[0.0, 0.2, 0.1], map_error=[0.0, 0.1, 0.2]).to_json(path)
    with pytest.raises(ValueError, match="calibration.json: calibration map knots must be"):
        sigma_calibration([path], al)


def test_select_compares_calibrated_sigma_with_the_trust_window(tmp_path) -> None:
    """Raw σ 0.05 / 0.12 / 0.3 eV/Å map to 0.1 / 0.36 / 1.2 eV/Å: with sigma_lo 0.2 and sigma_hi 0.5
    one frame is accurate, one a candidate and one failed (raw σ: all three candidates); the
    record keeps the map, and the report's histogram maps σ the same way."""
    from dataclasses import replace

    import pytest

    from conftest import settings_with
    from mlmm.al.selection import SelectionRecord
    from mlmm.al.stages import WalkerStats, select
    from mlmm.frames import read_frames, write_frames

    al = replace(settings_with().al, sigma_lo=0.02, sigma_hi=0.5, max_selected=5)
    frames = tmp_path / "walker0.extxyz"
    write_frames(frames, [_frame(0.0, 3.0), _frame(0.1, 4.0), _frame(0.2, 5.0)])
    stats = tmp_path / "walker0.json"
    WalkerStats(skipped=False, sigmas=[0.05, 0.12, 0.3]).to_json(stats)
    calibration = _calibration_file(tmp_path)
    args = dict(frames=[str(frames)], stats=[str(stats)], previous_selection=[], evaluations=[], iteration=1)
    raw = select(**args, calibration=[calibration], al=replace(al, calibrated_thresholds=False),
                 selected_out=str(tmp_path / "raw.extxyz"))
    assert (raw.accurate, raw.candidate, raw.failed, raw.sigma_scale, raw.map_sigma) == (0, 3, 0, 1.0, None)
    al = replace(al, sigma_lo=0.2)
    record = select(**args, calibration=[calibration], al=al, selected_out=str(tmp_path / "selected.extxyz"))
    assert (record.accurate, record.candidate, record.failed, record.n_selected) == (1, 1, 1, 1)
    assert read_frames(tmp_path / "selected.extxyz")[0].positions[1, 0] == pytest.approx(1.06)  # the raw σ 0.12 frame
    assert record.sigma_max == pytest.approx(1.2) and record.sigma_mean == pytest.approx((0.1 + 0.36 + 1.2) / 3)
    assert record.sigma_scale == 2.0 and record.map_sigma == [0.0, 0.1, 0.2] and record.map_error == [0.0, 0.2, 1.0]
    record.to_json(tmp_path / "selection.json")
    stored = SelectionRecord.from_json(tmp_path / "selection.json")
    assert stored.sigma_map().apply(np.array([0.05, 0.12, 0.3])) == pytest.approx([0.1, 0.36, 1.2])


def test_walkers_stop_at_the_raw_sigma_of_the_calibrated_sigma_stop(tmp_path) -> None:
    """A walker (raw σ) gets the σ whose expected error is al.sigma_stop: 0.15 eV/Å for 0.6 under the
    map of _calibration_file, 0.2 + (2.0 - 1.0) / 2 = 0.7 beyond its last knot, sigma_stop itself
    when uncalibrated; walkers cycle through al.temperatures; the stability probe keeps the raw
    production conditions."""
    from dataclasses import replace

    import pytest

    from conftest import settings_with
    from mlmm.al.stages import StabilityProbe, sigma_calibration, walker_conditions

    settings = settings_with()
    calibration = [_calibration_file(tmp_path)]
    for sigma_stop, calibrated, expected in ((0.6, True, 0.15), (2.0, True, 0.7), (0.6, False, 0.6)):
        al = replace(settings.al, sigma_stop=sigma_stop, calibrated_thresholds=calibrated)
        md = walker_conditions(al, 0, sigma_calibration(calibration, al))
        assert md["sigma_stop"] == pytest.approx(expected)
    al = replace(settings.al, temperatures=[300.0, 450.0])
    assert [walker_conditions(al, w, sigma_calibration(calibration, al))["temperature_K"] for w in range(3)] == [
        300.0, 450.0, 300.0]
    probe = StabilityProbe(timestep=0.5, temperature=310.0, friction=0.01, sigma_stop=1.5, max_force=20.0)
    md = walker_conditions(replace(al, stability_steps=400), 2, sigma_calibration(calibration, al), probe)
    assert (md["temperature_K"], md["steps"], md["sigma_stop"], md["timestep_fs"]) == (310.0, 400, 1.5, 0.5)


def test_trust_levels_follow_the_exploring_models_test_error(tmp_path) -> None:
    """sigma_hi/sigma_stop become sigma_*_relative × the median max force error of the calibration's
    test frames when that is larger (median 1.0 eV/Å here: 3.0 and 4.0), never lower than the
    configured levels, and stay as configured without calibrated thresholds or errors; select
    then counts a mapped σ of 1.2 eV/Å (above sigma_hi 0.5) as a candidate and records the levels."""
    from dataclasses import replace

    import pytest

    from conftest import settings_with
    from mlmm.al.stages import TrustLevels, WalkerStats, select
    from mlmm.model.calibration import Calibration

    al = replace(settings_with().al, sigma_lo=0.2, sigma_hi=0.5, sigma_stop=1.0, max_selected=5)
    assert (al.sigma_hi_relative, al.sigma_stop_relative) == (3.0, 4.0)  # the schema defaults
    path = tmp_path / "calibration.json"
    Calibration(n_frames=3, scale=2.0, map_sigma=[0.0, 0.1, 0.2], map_error=[0.0, 0.2, 1.0],
                max_force_error=[0.5, 1.0, 4.0]).to_json(path)
    calibration = Calibration.from_json(path)
    assert TrustLevels.of(calibration, al) == TrustLevels(0.2, 3.0, 4.0, 1.0)
    assert TrustLevels.of(calibration, replace(al, sigma_stop=6.0, sigma_hi_relative=0.0)) == TrustLevels(0.2, 0.5, 6.0, 1.0)
    assert TrustLevels.of(calibration, replace(al, calibrated_thresholds=False)) == TrustLevels(0.2, 0.5, 1.0, None)
    assert TrustLevels.of(Calibration.identity(), al) == TrustLevels(0.2, 0.5, 1.0, None)
    frames, stats = tmp_path / "walker0.extxyz", tmp_path / "walker0.json"
    from mlmm.frames import write_frames

    write_frames(frames, [_frame(0.0, 3.0), _frame(0.1, 4.0), _frame(0.2, 5.0)])
    WalkerStats(skipped=False, sigmas=[0.05, 0.12, 0.3]).to_json(stats)  # mapped: 0.1, 0.36, 1.2
    record = select(frames=[str(frames)], stats=[str(stats)], previous_selection=[], evaluations=[], iteration=1,
                    calibration=[str(path)], al=al, selected_out=str(tmp_path / "selected.extxyz"))
    assert (record.accurate, record.candidate, record.failed) == (1, 2, 0)
    assert record.trust_levels == pytest.approx({"sigma_lo": 0.2, "sigma_hi": 3.0, "sigma_stop": 4.0, "reference_error": 1.0})


def test_convergence_waits_for_a_stability_probe_that_ran_to_its_end(tmp_path) -> None:
    """All frames accurate, no breach of the thermal walker: converged only when the probe
    (kind 'stability probe') has no stop reason; the record says why."""
    from dataclasses import replace

    from conftest import settings_with
    from mlmm.al.stages import PROBE, WalkerStats, select
    from mlmm.frames import write_frames

    al = replace(settings_with().al, calibrated_thresholds=False, sigma_lo=1.0, converged_fraction=0.9)
    paths = []
    for w in range(2):
        write_frames(tmp_path / f"walker{w}.extxyz", [_frame(0.0, 3.0 + w)])
        paths.append(str(tmp_path / f"walker{w}.extxyz"))
    WalkerStats(skipped=False, kind="thermal", sigmas=[0.1]).to_json(tmp_path / "walker0.json")
    for stop, expected in (("sigma 2.1 > sigma_stop 1.5 at 0.3 ps", False), (None, True)):
        WalkerStats(skipped=False, kind=PROBE, sigmas=[0.1], time_ps=0.3 if stop else 1.0, stop_reason=stop,
                    breach=False).to_json(tmp_path / "walker1.json")
        record = select(frames=paths, stats=[str(tmp_path / f"walker{w}.json") for w in range(2)], previous_selection=[],
                        evaluations=[], calibration=[], iteration=1, al=al, selected_out=str(tmp_path / "sel.extxyz"))
        assert record.converged is expected and record.criteria["production_stable"]["met"] is expected
        assert record.criteria["production_stable"]["stop_reason"] == stop
