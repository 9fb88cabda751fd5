"""The bundled protein example (config/examples/chignolin.yaml: the Trp 9 side chain of chignolin
cut at CA–CB, a hydrogen link atom) through the whole chain by config alone, on tiny settings:
sampling with every sampler that applies, PySCF labels, training, one AL iteration, production,
NVE. Checks what the link atom must keep true in every stage's output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT, make_workdir, run_snakemake
from mlmm.frames import link_atoms, read_frames
from mlmm.labeling.db import read_labelled_frames


def tiny_config() -> dict:
    """The example's config with its science settings kept and its sizes cut to seconds."""
    config = yaml.safe_load((ROOT / "config" / "examples" / "chignolin.yaml").read_text())
    sampling = config["sampling"]
    config.update(
        results_dir="results",
        sampling={
            "xtb_md": {"activate": True, "n_frames": 10, "stride": 5, "equilibration_steps": 20},
            "metadynamics": {**sampling["metadynamics"], "equilibration_steps": 10, "stride": 5, "n_frames": 4},
            "normal_modes": {**sampling["normal_modes"], "n_frames": 2},
            "wigner": {**sampling["wigner"], "n_frames": 2},
            "pca": {**sampling["pca"], "n_components": 2, "n_frames": 2},
        },
        labeling={"chunk_size": 10, "level": {"method": "hf", "basis": "sto-3g"}},
        training={"n_members": 2, "n_atom_basis": 16, "n_interactions": 1, "n_rbf": 10, "max_epochs": 30,
                  "batch_size": 8, "val_fraction": 0.2},
        test_set={"n_frames": 4},  # the metadynamics test run must outlast its PACE
        al={"max_iterations": 1, "n_walkers": 1, "steps": 20, "stride": 5, "max_selected": 4, "stability_steps": 10},
        production={**config["production"], "steps": 20, "stride": 5, "replicas": 1, "nve_steps": 20,
                    "nve_equilibration_steps": 5, "sigma_action": "warn", "max_force": 500.0},
    )
    return config


@pytest.mark.workflow
def test_protein_side_chain_runs_the_whole_chain(tmp_path: Path) -> None:
    work = make_workdir(tmp_path, tiny_config())
    run_snakemake(work, "--cores", "2")
    results = work / "results"
    system = json.loads((results / "system" / "system.json").read_text())
    assert system["n_atoms_total"] == 4051 and system["n_qm"] == 18 and system["link_bonds"] == ["CB–CA (TRP 9, g = 0.7143)"]
    # every sampler's Frames and every labelled row carry the link atom on the CB–CA line, at ~1.09 Å
    sampled = read_frames(results / "sampling" / "frames.extxyz")
    labelled = read_labelled_frames(results / "labels" / "it0" / "labels.db")
    assert {f.info["sampler"] for f in sampled} == {"xtb_md", "metadynamics", "normal_modes", "wigner", "pca"}
    assert len(labelled) == len(sampled) == 20
    for frame in sampled + labelled:
        (row,), (ratio,) = link_atoms(frame)
        assert row[0] == 18 and frame.get_chemical_symbols()[18] == "H" and ratio == pytest.approx(1.09 / 1.526)
        assert 0.9 < np.linalg.norm(frame.positions[row[0]] - frame.positions[row[1]]) < 1.3
    for frame in labelled:  # the link atom is a QM atom of the reference: it carries a real force
        assert np.linalg.norm(frame.get_forces()[18]) > 0.01
    summary = json.loads((results / "summary.json").read_text())
    assert summary["al_iterations_run"] == 1 and np.isfinite(summary["test_errors_final"]["force_mae_qm"])
    prod = summary["production"]
    assert prod["replicas"][0]["steps_done"] == 20
    cut = prod["cv_distances"]["CA-CB (cut bond)"]
    assert 1.45 < cut["mean_ang"] < 1.6  # the MM bond term across the cut holds CA–CB
    assert np.isfinite(prod["nve"]["drift_eV_per_atom_per_ps"]) and prod["nve"]["steps"] == 20
