"""Records written between jobs: JSON round trip, the layout written before the record classes
existed is read unchanged, and the seed scheme reproduces the seeds the jobs used before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlmm.al.selection import SelectionRecord
from mlmm.analysis.production import ProductionAnalysis
from mlmm.al.stages import WalkerStats
from mlmm.dynamics.stages import (
    EnsembleStability,
    FreeEnergyProfile,
    MetadynamicsStats,
    NVEStats,
    ProductionStats,
    Stability,
)
from mlmm.excited.property_model import PropertyModelMetrics
from mlmm.excited.stages import (
    Broadening,
    ExcitedDynamicsStats,
    PropertyPrediction,
    PropertyPredictions,
    ReplicaRun,
    SpectraLabels,
    SpectraSummary,
)
from mlmm.labeling.reports import ChunkReport, ExcitedFrameLabel, ExcitedLabels, LabelReport
from mlmm.model.baseline import DeltaStats
from mlmm.model.calibration import Calibration, calibrate
from mlmm.model.stages import (
    AblationArm,
    EnsembleEvaluation,
    FieldAblation,
    TestSetErrors,
    TrainingPlots,
)
from mlmm.model.train import MemberMetrics
from mlmm.report.overview import TABLE_COLUMNS, ReportOverview
from mlmm.sampling.stages import SamplerStats, SamplerTotals, SamplingSummary
from mlmm.seeds import STREAMS, derive_seed
from mlmm.stages import SystemInfo

FRAME_OK = {"frame_id": "a1", "status": "ok", "resumed": False, "energy_ev": -2070.5, "attempts": [], "index": 0}
FRAME_FAILED = {"frame_id": "b2", "status": "scf_not_converged", "resumed": False, "index": 1}
EXCITED_OK = {
    "index": 0, "frame_id": "a1", "status": "ok", "ground_energy_ev": -4210.1, "excitation_energies_ev": [6.1, 7.2],
    "oscillator_strengths": [0.01, 0.4], "transition_dipoles_e_ang": [[0.1, 0.0, 0.0], [0.0, 0.9, 0.1]],
    "bright_state": 1, "bright_ambiguous": False, "bright_reason": "", "bright_score": 0.4,
    "bright_excitation_energy_ev": 7.2, "bright_oscillator_strength": 0.4, "bright_energy_ev": -4202.9,
    "wall_s": 3.5, "source_index": 4,
}
PRODUCTION = {
    "model": "final", "models": ["m0.pt", "m1.pt"], "replica": 1, "seed": 8, "ensemble": "NVT", "temperature_K": 300.0,
    "steps_requested": 40, "steps_done": 40, "length_ps": 0.02, "completed": True, "stop_reason": None,
    "sigma_action": "warn", "sigma_stop": 1.0, "n_sigma_exceeded": 0, "first_sigma_exceeded_ps": None,
    "n_handed_back": 0, "sigma_max": 0.12, "sigma_mean": 0.08, "temperature_mean_K": 290.1, "n_frames": 4,
    "ms_per_step": 12.5,
}
NVE = {"drift_eV_per_ps": 0.01, "drift_eV_per_atom_per_ps": 1e-4, "rms_fluctuation_eV": 0.002, "n_atoms": 100,
       "length_ps": 0.015, "steps_requested": 30, "steps": 30, "completed": True, "stop_reason": None,
       "timestep_fs": 0.5, "temperature_mean_K": 280.0, "n_sigma_exceeded": 0, "sigma_max": 0.1, "ms_per_step": 11.0}
ANALYSIS = {
    "replicas": [PRODUCTION, {**PRODUCTION, "replica": 2, "completed": False, "stop_reason": "sigma 1.2 > sigma_stop"}],
    "replicas_completed_without_breach": 1, "total_length_ps": 0.04, "sigma_max": 0.12, "ms_per_step": 12.5, "nve": NVE,
    "rdf": {"n_frames": 8, "first_peak_ang": 2.9, "first_minimum_ang": 3.5, "coordination_number": 4.2,
            "reference": "(resname ETH) and not element H"},
    "cv_distances": {"oh_ow": {"mean_ang": 2.8, "std_ang": 0.3, "frame_dt_ps": 0.005}},
    "trajectories": ["results/production/final/replica1/trajectory.dcd"],
    "topology": "results/production/final/replica1/topology.pdb",
}
PROPERTY_METRICS = {
    "n_frames": 36, "cv_folds": 5, "width": 2.4, "ridge": 1e-4,
    "group_weights": {"heavy_heavy": 1.0, "heavy_h": 0.5, "h_h": 0.0, "mm_potential": 1.0, "torsions": 2.0},
    "n_torsions": 4, "cv_mae_excitation_energy_ev": 0.03, "cv_mae_oscillator_strength": 0.01,
    "cv_mae_mean_predictor_excitation_energy_ev": 0.2, "cv_mae_mean_predictor_oscillator_strength": 0.05,
    "n_committee": 8, "cv_mean_committee_spread_excitation_energy_ev": 0.02,
    "cv_mean_committee_spread_oscillator_strength": 0.004, "sigma_scale_excitation_energy": 1.6,
    "sigma_scale_oscillator_strength": 1.2,
}
SPECTRA = {
    "absorption": {"peak_ev": 7.4, "peak_nm": 167.5, "integral": 0.3, "fraction_outside_grid": 0.0, "n_frames": 36},
    "emission_ml": {"peak_ev": 6.9, "peak_nm": 179.7, "integral": 14.0, "fraction_outside_grid": 1e-5, "n_frames": 16,
                    "n_extrapolated": 0, "mean_sigma_excitation_energy_ev": 0.04},
    "stokes": {"absorption_peak_ev": 7.4, "emission_peak_ev": 6.9, "absorption_peak_nm": 167.5,
               "emission_peak_nm": 179.7, "stokes_shift_ev": 0.5, "stokes_shift_nm": 12.2, "stokes_shift_cm-1": 4032.8},
    "reference": {"peak_ev": 6.9, "reference_peak_ev": 6.89, "peak_shift_ev": 0.01, "peak_shift_nm": -0.3,
                  "mean_ev": 6.95, "reference_mean_ev": 6.94, "mean_shift_ev": 0.01, "overlap": 0.97, "n_frames": 8,
                  "n_ambiguous": 0, "mae_excitation_energy_ev": 0.025, "mae_oscillator_strength": 0.01,
                  "mean_sigma_excitation_energy_ev": 0.03, "fraction_within_2sigma": 0.875},
    "broadening": {"fwhm_ev": 0.5, "shape": "gaussian"},
    "labels": {"n_frames": 36, "n_ok": 36, "n_ambiguous": 2, "bright_state_counts": {"2": 36}, "n_training_rows": 34},
}
METAD = {"replica": 0, "steps_requested": 40, "steps_done": 40, "completed": True, "stop_reason": None,
         "n_sigma_exceeded": 0, "sigma_max": 0.2, "ms_per_step": 13.0}
SEPARATE = {"n_frames": 4, "energy_mae": 0.04, "force_mae_qm": 0.3, "force_mae_mm": 0.05, "mean_error": -0.01,
            "offset_free_mae": 0.03, "rho_closest_mm": -0.4}
NO_ERRORS = {"n_frames": None, "energy_mae": None, "force_mae_qm": None, "force_mae_mm": None}
MEMBER = {
    "train_energy_mae": 0.02, "train_force_mae_qm": 0.2, "train_force_mae_mm": 0.03, "val_energy_mae": 0.03,
    "val_force_mae_qm": 0.25, "val_force_mae_mm": 0.04, "n_train": 10, "n_train_unique": 8, "n_val": 2, "epochs": 3, "val_losses": [3.0, 2.0, 1.5],
    "train_losses": [4.0, 2.5, 1.2], "warm_started_from": None, "best_val_loss": 1.5, "seconds": 12.5,
    "n_parameters": 4021, "seed": 1, "energy_reference": {"mean_per_atom_ev": -210.3},
    "settings": {"n_members": 2, "max_epochs": 3}, "num_threads": 1, "units": {"energy": "eV", "force": "eV/Ang"},
    "iteration": 0, "member": 1,
}
REPLICA = {"replica": 0, "steps_done": 20, "stop_reason": None, "n_frames_kept": 3, "sigma_max": 0.2, "ms_per_step": 15.0}
STABILITY_PART = {"replicas": 2, "completed": 1, "length_ps": [0.02, 0.01], "first_sigma_exceeded_ps": [None, 0.01],
                  "sigma_mean": [0.1, 0.5], "sigma_max": [0.2, 1.3], "stop_reason": [None, "sigma 1.3 > 1.0"]}

# (record class, JSON objects in the layout the stages wrote before the record classes)
LAYOUTS = [
    (SelectionRecord, [
        {"iteration": 1, "n_explored": 12, "sigma_scale": 1.0, "converged": False, "converged_at": None, "n_selected": 2,
         "reason": "selected", "accurate": 3, "candidate": 8, "failed": 1, "fraction_accurate": 0.25,
         "criteria": {"fraction_accurate": {"met": False, "value": 0.25, "target": 0.9}, "no_breach": {"met": True},
                      "validation": {"met": True, "note": "fewer than two evaluated models: no validation trend"}},
         "any_breach": False, "validation_force_mae_qm": [0.31],
         "walkers": [{"temperature_K": 300.0, "steps_done": 30, "steps_requested": 30, "time_ps": 0.015, "stop_reason": None}],
         "sigma_max": 0.7, "sigma_mean": 0.2},
        {"iteration": 3, "n_explored": 0, "sigma_scale": 1.0, "converged": True, "converged_at": 2, "n_selected": 0,
         "reason": "converged at iteration 2"},
    ]),
    (WalkerStats, [
        {"skipped": False, "seed": 1101, "temperature_K": 300.0, "steps_requested": 30, "steps_done": 12, "time_ps": 0.006,
         "stop_reason": "sigma 1.2 > sigma_stop", "breach": True, "sigmas": [0.1, 0.4, 1.2], "ms_per_step": 20.0},
    ]),
    (Calibration, [
        {"n_frames": 4, "spearman_rho": 0.8, "spearman_p": 0.2, "scale": 1.7, "scale_median": 1.6, "sigma_mean": 0.1,
         "error_mean": 0.17, "units": {"sigma": "eV/Ang", "error": "eV/Ang"}, "iteration": 0,
         "sigma_force": [0.05, 0.1, 0.12, 0.13], "max_force_error": [0.1, 0.15, 0.2, 0.23],
         "frames": "held-out test frames of all labels so far (never trained on by any member)"},
        {"n_frames": 2, "spearman_rho": None, "spearman_p": None, "scale": 1.0, "scale_median": None, "sigma_mean": 0.1,
         "error_mean": 0.2, "units": {"sigma": "eV/Ang", "error": "eV/Ang"},
         "note": "uncalibrated: 2 frame(s) with σ > 0 needed ≥ 3", "iteration": 1, "sigma_force": [0.1, 0.1],
         "max_force_error": [0.2, 0.2], "frames": "held-out"},
    ]),
    (EnsembleEvaluation, [
        {"n_frames": 3, "energy_mae": 0.05, "force_mae_qm": 0.2, "force_mae_mm": 0.02, "n_test": 3, "models": ["a.pt", "b.pt"],
         "member_force_mae_qm": [0.25, 0.3], "test_set": "results/test_set/labels.db"},
    ]),
    (ChunkReport, [
        {"frames_path": "results/sampling/frames.extxyz", "chunk_index": 0, "chunk_size": 8, "frame_range": [0, 2],
         "level": {"method": "hf", "basis": "sto-3g"}, "pyscf_version": "2.14.0", "n_frames": 2, "n_ok": 1, "n_failed": 1,
         "n_resumed": 0, "wall_s": 4.2, "frames": [FRAME_OK, FRAME_FAILED]},
    ]),
    (LabelReport, [
        {"n_frames": 2, "n_ok": 1, "n_failed": 1, "failed": [FRAME_FAILED], "frames": [FRAME_OK, FRAME_FAILED]},
    ]),
    (ExcitedLabels, [
        {"level": {"method": "hf"}, "td": {"n_states": 2, "tda": True}, "frames": "f.extxyz", "n_frames": 2, "n_ok": 1,
         "n_ambiguous": 0, "bright_state_counts": {"1": 1},
         "records": [EXCITED_OK, {"index": 1, "frame_id": "b2", "status": "error: RuntimeError: x", "source_index": 9}],
         "n_training_rows": 1},
    ]),
    (PropertyPredictions, [
        {"frames": "traj.extxyz", "n_extrapolated": 0, "coverage_min": 0.5, "mean_sigma_excitation_energy_ev": 0.05,
         "mean_sigma_oscillator_strength": 0.01,
         "records": [{"index": 0, "frame_id": "a1", "bright_excitation_energy_ev": 7.1, "bright_oscillator_strength": 0.38,
                      "sigma_excitation_energy_ev": 0.05, "sigma_oscillator_strength": 0.01, "coverage": 0.9}]},
    ]),
    (ProductionStats, [PRODUCTION]),
    (NVEStats, [
        NVE,
        {"steps_requested": 30, "steps": 0, "completed": False, "stop_reason": "NVT equilibration: max force 600 > 500"},
    ]),
    (MetadynamicsStats, [METAD]),
    (FreeEnergyProfile, [
        {"replicas": 2, "cv_min_location": -1.1, "free_energy_span_kJ_mol": 12.0, "max_standard_error_kJ_mol": 1.5,
         "mean_standard_error_kJ_mol": 0.7, "periodic": True, "cv_range": [-3.14159, 3.14159],
         "runs": [METAD, {**METAD, "replica": 1}], "profile_csv": "results/production/metadynamics/fes.csv"},
    ]),
    (SystemInfo, [
        {"structure": "data/demo/ethanol_water.pdb", "n_atoms_total": 2409, "n_qm": 9,
         "qm_symbols": ["C", "C", "O", "H", "H", "H", "H", "H", "H"], "link_bonds": [], "n_mm_in_cutoff": 153,
         "mm_charge_in_cutoff_e": 0.0, "periodic": True, "cell_ang": [29.1, 29.1, 29.1], "qm_charge": 0,
         "multiplicity": 1},
    ]),
    (ExcitedDynamicsStats, [
        {"n_frames": 5, "relaxation_fs": 5.0,
         "initial": {"initial": "wigner", "environment": "embedded", "temperature_K": 300.0, "n_modes": 6,
                     "harmonic_energy_ev": [0.1, 0.2], "kinetic_energy_ev": [0.15, 0.1], "expected_mean_harmonic_ev": 0.14},
         "replicas": [REPLICA, {**REPLICA, "replica": 1, "stop_reason": "sigma 1.2 > sigma_stop", "n_frames_kept": 2}]},
        {"n_frames": 3, "relaxation_fs": 0.0, "initial": {"initial": "ground_state"}, "replicas": [REPLICA]},
    ]),
    (FieldAblation, [
        {"units": {"energy": "eV", "force": "eV/Ang"},
         "with_field": {"test_set": SEPARATE},
         "without_field": {"test_set": {**SEPARATE, "energy_mae": 0.09}},
         "environment_scan": {"distances_ang": [2.5, 3.0], "reference_ev": [0.1, 0.0],
                              "models": {"with_field": {"curve_ev": [0.09, 0.0]}}},
         "field_improves": {"energy_mae": True, "force_mae_qm": False, "force_mae_mm": False}},
    ]),
    (MemberMetrics, [
        MEMBER,
        {**MEMBER, "n_train_unique": 10, "warm_started_from": "results/models/it0/member1.pt",
         "carried_forward_from": "results/models/it1/member1.pt"},
    ]),
    (Stability, [{"final": STABILITY_PART, "initial": None}, {"final": STABILITY_PART, "initial": STABILITY_PART}]),
    (SamplerStats, [
        {"sampler": "xtb_md", "n_frames": 16, "md_steps": 100, "wall_s": 3.0, "ms_per_step": 30.0},
        {"sampler": "normal_modes", "n_frames": 8, "wall_s": 1.0, "harmonic_energy_ev": [0.1, 0.2],
         "expected_mean_harmonic_ev": 0.15},
    ]),
    (SamplingSummary, [
        {"samplers": {"xtb_md": {"n_frames": 16, "wall_s": 3.0}, "wigner": {"n_frames": 8, "wall_s": 1.0}}, "n_frames": 24},
    ]),
    (ProductionAnalysis, [
        ANALYSIS,
        {**ANALYSIS, "nve": None, "cv_distances": {}},  # no NVE check, no CVs configured
    ]),
    (PropertyModelMetrics, [PROPERTY_METRICS]),
    (DeltaStats, [
        {"baseline": "xtb", "n_frames": 16, "energy_correction_mean_ev": -3.2, "energy_correction_std_ev": 0.05,
         "baseline_force_mae_qm": 0.4, "baseline_force_mae_mm": 0.02},
        {"baseline": "xtb", "n_frames": 0, "energy_correction_mean_ev": None, "energy_correction_std_ev": None,
         "baseline_force_mae_qm": None, "baseline_force_mae_mm": None},
    ]),
    (SpectraSummary, [
        SPECTRA,  # without property model, dynamics and AL (the stage test's call)
        {**SPECTRA, "labels": {**SPECTRA["labels"], "n_training_rows": None}, "property_model": PROPERTY_METRICS,
         "dynamics": {"n_frames": 3, "relaxation_fs": 0.0, "initial": {"initial": "ground_state"},
                      "replicas": [REPLICA]},
         "active_learning": [{"iteration": 1, "n_explored": 12, "sigma_scale": 1.0, "converged": False,
                              "converged_at": None, "n_selected": 2, "reason": "selected"}]},
    ]),
    (ReportOverview, [
        {"al_table": [dict.fromkeys(TABLE_COLUMNS) | {"iteration": 0, "labels": 16, "failed_labels": 0},
                      dict.fromkeys(TABLE_COLUMNS) | {"iteration": 1, "labels": 20, "selected": 4, "converged": False,
                                                       "walker_ps_before_stop": "0.020/0.250"}],
         "walker_sigma_counts": [30, 0], "walker_sigma_max_eV_per_A": [0.6, None]},
    ]),
    (TrainingPlots, [
        {"learning_curves": "results/plots/training_learning_curves.png", "parity": "results/plots/training_parity.png",
         "calibration": "results/plots/training_calibration.png", "n_test": 20},
    ]),
]


@pytest.mark.parametrize("cls, layout", [(c, d) for c, ds in LAYOUTS for d in ds],
                         ids=[f"{c.__name__}{k}" for c, ds in LAYOUTS for k in range(len(ds))])
def test_layout_written_before_is_read_and_kept(tmp_path: Path, cls, layout) -> None:
    """A file of today's layout reads into the record and writes back as the same JSON object."""
    path = tmp_path / "old.json"
    path.write_text(json.dumps(layout, indent=2))
    record = cls.from_json(path)
    assert record.to_dict() == layout
    record.to_json(tmp_path / "new.json")
    assert json.loads((tmp_path / "new.json").read_text()) == layout
    assert cls.from_json(tmp_path / "new.json") == record


def test_records_built_in_code_round_trip(tmp_path: Path) -> None:
    records = [
        WalkerStats(skipped=True, converged_at=2),
        EnsembleEvaluation(n_test=0, models=["a.pt"]),
        Calibration(n_frames=0, note="uncalibrated"),
        LabelReport.merge([ChunkReport.from_dict(LAYOUTS[4][1][0])] * 2),
        ExcitedLabels({}, {}, "f", 1, 1, 0, {"1": 1}, [ExcitedFrameLabel.from_dict(EXCITED_OK)]),
        PropertyPredictions("t", 0, 0.5, 0.1, 0.0, [PropertyPrediction(0, "a", 7.0, 0.4, 0.1, 0.0, 1.0)]),
        NVEStats(steps_requested=10),
        Stability(final=EnsembleStability.from_dict(STABILITY_PART)),
        SamplerStats("pca", 3, 0.5, {"n_components": 2}),
        SamplingSummary({"pca": SamplerTotals(3, 0.5)}, 3),
        ExcitedDynamicsStats(2, 1.0, {"initial": "ground_state"}, [ReplicaRun(0, 4, None, 2, 0.1, 9.0)]),
        FieldAblation({"energy": "eV"}, AblationArm(TestSetErrors(**SEPARATE)), AblationArm(TestSetErrors(**SEPARATE)),
                      {}, {}),
        SpectraSummary(SPECTRA["absorption"], SPECTRA["emission_ml"], SPECTRA["stokes"], SPECTRA["reference"],
                       Broadening(0.3, "lorentzian"), SpectraLabels(4, 3, 1, {"1": 2, "2": 1}, None),
                       property_model=PropertyModelMetrics(**PROPERTY_METRICS)),
        calibrate([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0.2, 0.1, 0.5, 0.6, 0.4, 0.9]),  # map, bound, reliability
    ]
    for k, record in enumerate(records):
        path = tmp_path / f"r{k}.json"
        record.to_json(path)
        assert type(record).from_json(path) == record
    merged = records[3]
    assert (merged.n_frames, merged.n_ok, merged.n_failed, len(merged.failed)) == (4, 2, 2, 2)


def test_older_layouts_read_and_bad_records_are_explicit(tmp_path: Path) -> None:
    """Layouts of before (skipped walker without stop_reason, selection without sigma_scale,
    predictions without σ) still read; a wrong file is named in the error."""
    path = tmp_path / "walker0.json"
    path.write_text(json.dumps({"skipped": True, "converged_at": 1, "sigmas": [], "breach": False}))
    walker = WalkerStats.from_json(path)
    assert walker.skipped and walker.converged_at == 1 and walker.stop_reason is None and walker.sigmas == []
    old = tmp_path / "selection.json"  # before al.calibrated_thresholds: no sigma_scale
    old.write_text(json.dumps({"iteration": 2, "n_explored": 4, "converged": True, "converged_at": 1, "n_selected": 0,
                               "reason": "converged at iteration 1"}))
    assert SelectionRecord.from_json(old).sigma_scale == 1.0
    old.write_text(json.dumps({"index": 0, "frame_id": "a", "bright_excitation_energy_ev": 7.0,
                               "bright_oscillator_strength": 0.3}))  # before the committee σ
    assert PropertyPrediction.from_json(old).sigma_excitation_energy_ev == 0.0
    path.write_text(json.dumps({"skipped": False, "sigma": [0.1]}))
    with pytest.raises(ValueError, match=r"walker0.json: unexpected key\(s\) \['sigma'\] in a WalkerStats record"):
        WalkerStats.from_json(path)
    path.write_text(json.dumps({"scale": 2.0}))
    with pytest.raises(ValueError, match="walker0.json: Calibration record lacks the key 'n_frames'"):
        Calibration.from_json(path)
    path.write_text(json.dumps({"samplers": {}}))
    with pytest.raises(ValueError, match="SamplingSummary record lacks the key 'n_frames'"):
        SamplingSummary.from_json(path)


@pytest.mark.parametrize("cls, layout, key", [
    (SystemInfo, LAYOUTS[[c for c, _ in LAYOUTS].index(SystemInfo)][1][0], "n_qm"),
    (ExcitedDynamicsStats, {"n_frames": 1, "relaxation_fs": 0.0, "initial": {}, "replicas": [REPLICA]}, "initial"),
    (FreeEnergyProfile, {"replicas": 1, "cv_min_location": 0.0, "free_energy_span_kJ_mol": 1.0,
                         "max_standard_error_kJ_mol": 0.0, "mean_standard_error_kJ_mol": 0.0, "periodic": False,
                         "cv_range": [0.0, 1.0], "runs": [METAD], "profile_csv": "fes.csv"}, "profile_csv"),
    (MemberMetrics, MEMBER, "val_losses"),
    (ProductionAnalysis, ANALYSIS, "nve"),
    (PropertyModelMetrics, PROPERTY_METRICS, "sigma_scale_oscillator_strength"),
    (SpectraSummary, SPECTRA, "labels"),
    (ReportOverview, {"al_table": [], "walker_sigma_counts": [], "walker_sigma_max_eV_per_A": []}, "al_table"),
    (DeltaStats, {"baseline": "xtb", "n_frames": 2, "energy_correction_mean_ev": -3.2, "energy_correction_std_ev": 0.05,
                  "baseline_force_mae_qm": 0.4, "baseline_force_mae_mm": None}, "baseline_force_mae_mm"),
])
def test_new_records_name_the_file_and_key(tmp_path: Path, cls, layout, key) -> None:
    """The records of the job outputs (system.json, member metrics, production analysis, ...): a missing
    key and an unknown (misspelt) key are each one error naming the file."""
    path = tmp_path / "in.json"
    path.write_text(json.dumps({k: v for k, v in layout.items() if k != key}))
    with pytest.raises(ValueError, match=rf"in.json: {cls.__name__} record lacks the key '{key}'"):
        cls.from_json(path)
    path.write_text(json.dumps({**layout, f"{key}_x": 1}))
    with pytest.raises(ValueError, match=rf"in.json: unexpected key\(s\) \['{key}_x'\] in a {cls.__name__} record"):
        cls.from_json(path)


def test_nested_records_errors_name_the_file(tmp_path: Path) -> None:
    """A replica line, an ablation arm, a metaD run, a production replica or the spectra' property-model
    metrics missing a key: the error names the file and the nested record."""
    path = tmp_path / "stats.json"
    path.write_text(json.dumps({"n_frames": 1, "relaxation_fs": 0.0, "initial": {},
                                "replicas": [{k: v for k, v in REPLICA.items() if k != "sigma_max"}]}))
    with pytest.raises(ValueError, match="stats.json: ReplicaRun record lacks the key 'sigma_max'"):
        ExcitedDynamicsStats.from_json(path)
    ablation = LAYOUTS[[c for c, _ in LAYOUTS].index(FieldAblation)][1][0]
    path.write_text(json.dumps({**ablation, "with_field": {"test_set": NO_ERRORS}}))
    with pytest.raises(ValueError, match="stats.json: TestSetErrors record lacks the key 'mean_error'"):
        FieldAblation.from_json(path)
    path.write_text(json.dumps({k: v for k, v in ablation.items() if k != "without_field"}))
    with pytest.raises(ValueError, match="stats.json: FieldAblation record lacks the key 'without_field'"):
        FieldAblation.from_json(path)
    fes = LAYOUTS[[c for c, _ in LAYOUTS].index(FreeEnergyProfile)][1][0]
    path.write_text(json.dumps({**fes, "runs": [{**METAD, "sigma": 0.1}]}))
    with pytest.raises(ValueError, match=r"stats.json: unexpected key\(s\) \['sigma'\] in a MetadynamicsStats record"):
        FreeEnergyProfile.from_json(path)
    path.write_text(json.dumps({**ANALYSIS, "replicas": [{k: v for k, v in PRODUCTION.items() if k != "seed"}]}))
    with pytest.raises(ValueError, match="stats.json: ProductionStats record lacks the key 'seed'"):
        ProductionAnalysis.from_json(path)
    without_ridge = {k: v for k, v in PROPERTY_METRICS.items() if k != "ridge"}
    path.write_text(json.dumps({**SPECTRA, "property_model": without_ridge}))
    with pytest.raises(ValueError, match="stats.json: PropertyModelMetrics record lacks the key 'ridge'"):
        SpectraSummary.from_json(path)


def test_derive_seed_reproduces_the_offsets_used_before() -> None:
    """The formulas the stages used before the seed scheme, for a grid of bases and indices."""
    for base in (0, 7, 100, 12345):
        for it in range(4):
            for k in range(5):
                assert derive_seed(base, stream="al_walker", iteration=it, index=k) == base + 1000 * it + k
                assert derive_seed(base, stream="adaptive_run", iteration=it, index=k) == base + 1000 * it + k
            assert derive_seed(base, stream="training_member", index=it) == base + it
            assert derive_seed(base, stream="production_replica", index=it) == base + it
            assert derive_seed(base, stream="production_metadynamics", index=it) == base + 20_000 + it
            assert derive_seed(base, stream="excited_replica", index=it) == base + it
            assert derive_seed(base, stream="excited_ground", index=it) == base + 10_000 + it  # new stream
        assert derive_seed(base, stream="production_nve") == base + 10_000
    assert set(STREAMS) == {"al_walker", "training_member", "production_replica", "production_nve",
                            "production_metadynamics", "excited_replica", "excited_ground", "adaptive_run"}
    with pytest.raises(ValueError, match="unknown seed stream 'walker'"):
        derive_seed(0, stream="walker")
