"""Uncertainty-biased exploration: σ_E² bias energy, its forces (finite differences) and its use in MD;
PLUMED metadynamics on the uncertainty CV (real kernel, EXTRACV): CV gradient by finite differences,
hill heights and bias forces against the well-tempered formula, and the walkers of al.explore."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from mlmm.frames import make_frame
from mlmm.model.ensemble import Ensemble
from mlmm.model.nn import build_model, energy_head
from mlmm.sampling.uncertainty import (
    CV_EPS_EV,
    SigmaBiasedEnsemble,
    UncertaintyMetadynamics,
    biased_term,
    sigma_bias,
    uncertainty_cv,
)
from mlmm.engines.plumed import read_plumed_table
from mlmm.settings import BiasSettings
from conftest import embedding_with, settings_with

SETTINGS = settings_with(training={"n_atom_basis": 16, "n_interactions": 2, "n_rbf": 10, "cutoff": 4.0}).training
#: The members' embedding (and so that of the frames and potentials they are used with).
EMBEDDING = embedding_with(cutoff=6.0, switch_width=1.5)
WATER = np.array([[0.0, 0.0, 0.0], [0.9572, 0.0, 0.0], [-0.2400, 0.9266, 0.0]])


def bias_settings(**changes) -> BiasSettings:
    """The schema-default ``al.bias`` with ``changes``."""
    return replace(settings_with().al.bias, **changes)


def member(seed: int, embedding=EMBEDDING) -> torch.nn.Module:
    """An untrained float64 member (seeded) trained, as it were, with ``embedding``."""
    torch.manual_seed(seed)
    m = build_model(SETTINGS, qm_charge_e=0, embedding=embedding).double().eval()
    head = energy_head(m)
    with torch.no_grad():
        head.atomref_ev[1], head.atomref_ev[8] = -13.6, -2040.0
        head.energy_scale_ev.fill_(0.3)
    return m


@pytest.fixture(scope="module")
def ensemble() -> Ensemble:
    return Ensemble([member(s) for s in (1, 2, 3)])


def frame():
    mm = np.vstack([WATER + [2.8, 0.5, 0.3], WATER + [-1.5, -2.5, 0.8]])
    return make_frame(["O", "H", "H"], WATER + [0.05, -0.03, 0.02], ["O", "H", "H"] * 2, mm, [-0.834, 0.417, 0.417] * 2,
                      mm_molecule=[0, 0, 0, 1, 1, 1], embedding=EMBEDDING, qm_charge=0, multiplicity=1, sampler="test", iteration=0, source="test", seed=0)


def test_bias_formula():
    e = np.array([1.0, 1.2, 0.8])
    f = np.zeros((3, 2, 3))
    energy, forces, var = sigma_bias(e, f, n_qm=2, strength_ev=0.5, width_ev=0.1)
    assert var == pytest.approx(0.04)
    assert energy == pytest.approx(0.5 * (np.exp(-0.04 / (2 * 0.01)) - 1.0))
    assert np.all(forces == 0.0)
    assert sigma_bias(np.ones(3), f, 2, 0.5, 0.1)[0] == 0.0  # members agree: no bias
    with pytest.raises(ValueError):
        sigma_bias(e[:1], f[:1], 2, 0.5, 0.1)


def test_bias_forces_are_minus_gradient(ensemble):
    """Analytic bias forces on QM atoms and MM sites match central differences of the bias energy."""
    term = SigmaBiasedEnsemble(ensemble, strength_ev=0.3, width_ev=0.05)
    fr = frame()
    out = term.compute(fr)
    assert out["bias_energy"] < 0 and out["sigma_energy"] > 0
    assert out["energy"] == pytest.approx(out["unbiased_energy"] + out["bias_energy"])
    bias_forces = out["forces"] - ensemble.compute(fr)["forces"]
    h = 1e-4
    for atom in (0, 2, 3, 7):  # QM O, QM H, MM O, MM H
        for k in range(3):
            plus, minus = fr.copy(), fr.copy()
            plus.positions[atom, k] += h
            minus.positions[atom, k] -= h
            grad = (term.compute(plus)["bias_energy"] - term.compute(minus)["bias_energy"]) / (2 * h)
            assert bias_forces[atom, k] == pytest.approx(-grad, rel=1e-4, abs=1e-7)


def test_biased_term_selection(ensemble):
    assert biased_term(ensemble, settings_with().al.bias) is ensemble  # schema default: kind none
    assert biased_term(ensemble, bias_settings(kind="none", strength=1.0, width=0.1)) is ensemble
    term = biased_term(ensemble, bias_settings(kind="sigma", strength=0.2, width=0.02))
    assert isinstance(term, SigmaBiasedEnsemble) and term.strength_ev == 0.2
    with pytest.raises(ValueError, match="al.bias.kind"):
        biased_term(ensemble, bias_settings(kind="metad"))
    with pytest.raises(ValueError, match="temperature, timestep and output folder"):
        biased_term(ensemble, bias_settings(kind="metadynamics"))


def test_bias_pushes_towards_uncertainty(ensemble):
    """A small step along the bias forces raises the committee energy variance, a step against
    them lowers it (the bias is a monotonically decreasing function of σ_E²)."""
    term = SigmaBiasedEnsemble(ensemble, strength_ev=1.0, width_ev=0.3)
    fr = frame()
    out = term.compute(fr)
    f_bias = out["forces"] - ensemble.compute(fr)["forces"]
    step = 0.01 * f_bias / np.abs(f_bias).max()  # at most 0.01 Å per component
    variances = []
    for sign in (-1.0, 1.0):
        moved = fr.copy()
        moved.positions = fr.positions + sign * step
        variances.append(term.compute(moved)["sigma_energy"] ** 2)
    assert variances[0] < out["sigma_energy"] ** 2 < variances[1]


def test_biased_mlp_md_runs_and_reports_unbiased_sigma(ensemble, tmp_path):
    """The wrapper is a drop-in QM term for the MLP/MM driver used by al.explore."""
    from mlmm.dynamics.mlp_md import run_mlp_md
    from mlmm.potentials import build_potential

    from test_sampling_modes import small_system

    system = small_system(tmp_path, n_waters=4)
    kwargs = dict(steps=6, timestep_fs=0.25, temperature_K=300.0, friction_per_fs=0.01, stride=3, seed=1,
                  sigma_stop=1e6, max_force=1e6, sampler="al_explore", iteration=1, source="t")
    bias = bias_settings(kind="sigma", strength=1.0, width=0.3)
    plain = run_mlp_md(system, build_potential("ensemble", system, embedding=EMBEDDING, ensemble=ensemble), **kwargs)
    biased = run_mlp_md(system, build_potential("ensemble", system, embedding=EMBEDDING, ensemble=ensemble, bias=bias),
                        **kwargs)
    assert plain.steps_done == biased.steps_done == 6 and len(biased.frames) == 2
    # same start: the first recorded σ differ only through the bias acting for 3 steps
    assert all(s > 0 for s in biased.sigmas) and biased.potential_energies != plain.potential_energies


def test_uncertainty_cv_gradient_is_the_finite_difference(ensemble):
    """u = sqrt(σ_E²/N_QM + ε²) from the members' energies; ∇u from their forces matches central
    differences of u on QM atoms and MM sites."""
    fr = frame()

    def u_of(f) -> float:
        out = ensemble.compute(f)
        return uncertainty_cv(out["energies"], out["member_forces"], 3)[0]

    out = ensemble.compute(fr)
    u, grad = uncertainty_cv(out["energies"], out["member_forces"], 3)
    assert u == pytest.approx(np.sqrt(np.var(out["energies"], ddof=1) / 3 + CV_EPS_EV**2)) and u > 10 * CV_EPS_EV
    h = 1e-4
    for atom in (0, 1, 3, 8):
        for k in range(3):
            plus, minus = fr.copy(), fr.copy()
            plus.positions[atom, k] += h
            minus.positions[atom, k] -= h
            assert grad[atom, k] == pytest.approx((u_of(plus) - u_of(minus)) / (2 * h), rel=1e-4, abs=1e-8)


def test_uncertainty_metadynamics_deposits_well_tempered_hills(ensemble, tmp_path):
    """With the real PLUMED kernel: hills every `pace` new positions (not on a re-evaluation at the
    same positions) at the visited u, heights h·exp(−V/(kB ΔT)) of well-tempered metadynamics, and
    bias forces = −dV/du ∇u with dV/du from the Gaussian sum of the HILLS file."""
    from openmm.unit import MOLAR_GAS_CONSTANT_R, kelvin, kilojoule_per_mole

    from mlmm.units import KJ_PER_MOL_TO_EV

    width, height, T, gamma = 0.1, 2.0, 300.0, 8.0  # u of these untrained members: ~1 eV
    term = UncertaintyMetadynamics(ensemble, height_kj_mol=height, cv_width_ev=width, pace=2, biasfactor=gamma,
                                   temperature_K=T, timestep_fs=0.5, out_dir=tmp_path)
    fr = frame()
    rng = np.random.default_rng(0)
    us = []
    for step in range(8):
        moved = fr.copy()
        moved.positions = fr.positions + rng.normal(scale=0.01, size=fr.positions.shape)
        out = term.compute(moved)
        term.compute(moved)  # the driver re-evaluating a saved step: no new step, no hill
        us.append(out["uncertainty_cv"])
    last = out
    term.finalize()
    names, hills = read_plumed_table(tmp_path / "HILLS_uncertainty")
    assert len(hills) == 3  # PLUMED deposits at steps 2, 4, 6 of the 8 new positions (16 calls)
    assert np.allclose(hills[:, names.index("u")], [us[2], us[4], us[6]], atol=1e-9)
    kT = float((MOLAR_GAS_CONSTANT_R * T * kelvin).value_in_unit(kilojoule_per_mole))

    def bias_at(u: float, hills_so_far) -> tuple[float, float]:
        """V (kJ/mol) and dV/du of the deposited hills (HILLS holds heights × γ/(γ−1)): PLUMED's
        "stretched" Gaussians, h·(a·exp(−d²/2) + b) for d²/2 < 6.25 and 0 beyond, shifted and
        stretched so they vanish at the cutoff (a = 1/(1 − e^−6.25), b = −a·e^−6.25)."""
        c, w, h = hills_so_far[:, 1], hills_so_far[:, 2], hills_so_far[:, 3] * (gamma - 1) / gamma
        dp2 = 0.5 * ((u - c) / w) ** 2
        a = 1.0 / (1.0 - np.exp(-6.25))
        inside = dp2 < 6.25
        g = np.where(inside, h * (a * np.exp(-dp2) - a * np.exp(-6.25)), 0.0)
        dg = np.where(inside, -h * a * np.exp(-dp2) * (u - c) / w**2, 0.0)
        return float(g.sum()), float(dg.sum())

    assert hills[0, 3] * (gamma - 1) / gamma == pytest.approx(height)  # the first hill at full height
    for k in (1, 2):  # well tempered: each hill shrinks with the bias already at its centre
        v_before = bias_at(hills[k, 1], hills[:k])[0]
        assert hills[k, 3] * (gamma - 1) / gamma == pytest.approx(height * np.exp(-v_before / (kT * (gamma - 1))), rel=1e-6)
    assert min(hills[1:, 3]) < hills[0, 3]  # the hills overlap: well tempering shows
    v, dv = bias_at(us[7], hills)
    assert last["bias_energy"] == pytest.approx(v * KJ_PER_MOL_TO_EV, rel=1e-6)
    plain = ensemble.compute(moved)
    _, grad_u = uncertainty_cv(plain["energies"], plain["member_forces"], 3)
    assert np.allclose(last["forces"] - plain["forces"], -dv * KJ_PER_MOL_TO_EV * grad_u, rtol=1e-5, atol=1e-10)
    assert last["sigma_force"] == plain["sigma_force"]  # selection sees the unbiased uncertainty


def saved_members(ensemble, directory) -> list[str]:
    """The ensemble's members saved as member<k>.pt in ``directory`` (what the AL stages load)."""
    paths = []
    for k, m in enumerate(ensemble.models):
        paths.append(str(directory / f"member{k}.pt"))
        torch.save(m, paths[-1])
    return paths


def test_explore_walkers_biased_along_uncertainty_and_cvs(ensemble, tmp_path):
    """al.explore: walker 0 thermal + uncertainty metadynamics, walker 1 (al.metadynamics_walkers: 1)
    also along the sampling.metadynamics torsion; both leave HILLS of a real PLUMED run next to their
    frames and report the unbiased σ."""
    from mlmm.al.stages import explore
    from mlmm.engines.plumed import read_plumed_table
    from conftest import FORCE_FIELDS, config_with
    from mlmm.settings import ALSettings, MetadynamicsSamplerSettings, SystemSettings
    from test_sampling_modes import small_system

    small_system(tmp_path, n_waters=4)
    models = saved_members(ensemble, tmp_path)
    torsion = "phi: TORSION ATOMS=1,2,3,4\nmetad: METAD ARG=phi SIGMA=0.35 HEIGHT=1.2 PACE=5 FILE=HILLS\nPRINT ARG=phi STRIDE=5 FILE=COLVAR"
    cfg = config_with(
        system={"structure": str(tmp_path / "eth_small.pdb"), "force_field": FORCE_FIELDS["ethanol_water.pdb"],
                "nonbonded": {"method": "none"}, "embedding": {"cutoff": 6.0, "switch_width": 1.5}},
        sampling={"metadynamics": {"plumed": torsion}},
        al={"n_walkers": 2, "metadynamics_walkers": 1, "steps": 12, "stride": 4, "timestep": 0.25, "sigma_lo": 1e3,
            "sigma_hi": 1e4, "sigma_stop": 1e5, "max_force": 1e6, "bias": {"kind": "metadynamics", "pace": 4}})
    al = ALSettings.from_dict(cfg["al"])
    for walker, kind in ((0, "thermal + uncertainty metadynamics"), (1, "metadynamics + uncertainty metadynamics")):
        out = tmp_path / f"walker{walker}.extxyz"
        stats = explore(cfg["system"]["structure"], models, [], [], 1, walker, al, SystemSettings.from_dict(cfg["system"]),
                        str(out), "cpu", MetadynamicsSamplerSettings.from_dict(cfg["sampling"]["metadynamics"]))
        assert stats.kind == kind and stats.steps_done == 12 and len(stats.sigmas) == 3 and min(stats.sigmas) > 0
        names, hills = read_plumed_table(tmp_path / f"walker{walker}_plumed" / "HILLS_uncertainty")
        assert len(hills) == 3 and "u" in names  # steps 4, 8 and 12
        assert (tmp_path / f"walker{walker}_plumed" / "HILLS").is_file() == (walker == 1)  # the torsion walker only


def test_stability_probe_runs_unbiased_at_the_production_conditions(ensemble, tmp_path):
    """With al.stability_steps, walker n_walkers is the probe: al.stability_steps of unbiased MD
    (no HILLS although al.bias is metadynamics) at the production temperature and timestep,
    stopped by the raw production sigma_stop; a probe without production conditions is an error."""
    from dataclasses import replace

    from mlmm.al.stages import PROBE, StabilityProbe, explore
    from conftest import FORCE_FIELDS, config_with
    from mlmm.settings import ALSettings, SystemSettings
    from test_sampling_modes import small_system

    small_system(tmp_path, n_waters=4)
    models = saved_members(ensemble, tmp_path)
    cfg = config_with(
        system={"structure": str(tmp_path / "eth_small.pdb"), "force_field": FORCE_FIELDS["ethanol_water.pdb"],
                "nonbonded": {"method": "none"}, "embedding": {"cutoff": 6.0, "switch_width": 1.5}},
        al={"n_walkers": 1, "steps": 12, "stride": 4, "timestep": 0.25, "sigma_lo": 1e-11, "sigma_hi": 1e-10,
            "sigma_stop": 1e-9, "max_force": 1e6,
            "stability_steps": 16, "bias": {"kind": "metadynamics", "pace": 4}})
    al, system = ALSettings.from_dict(cfg["al"]), SystemSettings.from_dict(cfg["system"])
    probe = StabilityProbe(timestep=0.5, temperature=450.0, friction=0.01, sigma_stop=1e5, max_force=1e6)
    out = str(tmp_path / "walker1.extxyz")
    stats = explore(cfg["system"]["structure"], models, [], [], 1, 1, al, system, out, "cpu", probe=probe)
    assert stats.kind == PROBE and stats.temperature_K == 450.0 and stats.sigma_stop == 1e5
    assert stats.steps_done == 16 and stats.time_ps == pytest.approx(0.008) and stats.stop_reason is None
    assert len(stats.sigmas) == 4 and not (tmp_path / "walker1_plumed" / "HILLS_uncertainty").exists()
    stopped = explore(cfg["system"]["structure"], models, [], [], 1, 1, al, system, out, "cpu",
                      probe=replace(probe, sigma_stop=1e-6))
    assert stopped.breach and stopped.steps_done == 4 and stopped.stop_reason
    with pytest.raises(ValueError, match="stability probe"):
        explore(cfg["system"]["structure"], models, [], [], 1, 1, al, system, out, "cpu")


def test_emission_replicas_start_from_their_own_ground_state_runs(ensemble, tmp_path):
    """excited.dynamics.initial ground_state_md: each replica starts from the last state of its own
    ground-state run (ground_steps), so replicas differ in QM and MM positions from each other and
    from the input structure; that start equals a ground-state run with the replica's seed done
    separately, and the bright-state run continues from it (its first frame one stride later)."""
    import ase.io

    from conftest import FORCE_FIELDS, config_with
    from mlmm.dynamics.mlp_md import run_mlp_md
    from mlmm.excited.stages import excited_dynamics, ground_state_starts
    from mlmm.jobs import system_from_config
    from mlmm.potentials import ensemble_potential
    from mlmm.seeds import derive_seed
    from mlmm.settings import ExcitedDynamicsSettings, SystemSettings
    from test_sampling_modes import small_system

    small_system(tmp_path, n_waters=4)
    models = saved_members(ensemble, tmp_path)
    cfg = config_with(
        system={"structure": str(tmp_path / "eth_small.pdb"), "force_field": FORCE_FIELDS["ethanol_water.pdb"],
                "nonbonded": {"method": "none"}, "embedding": {"cutoff": 6.0, "switch_width": 1.5}},
        excited={"dynamics": {"initial": "ground_state_md", "n_replicas": 2, "ground_steps": 24, "steps": 8, "stride": 4,
                              "relaxation": 0.0, "timestep": 0.25, "sigma_stop": 1e5, "max_force": 1e6}})
    dyn, settings = ExcitedDynamicsSettings.from_dict(cfg["excited"]["dynamics"]), SystemSettings.from_dict(cfg["system"])
    structure = cfg["system"]["structure"]
    system = system_from_config(structure, settings)
    starts, runs = ground_state_starts(system, ensemble, dyn, settings.embedding, structure)
    assert [r["steps"] for r in runs] == [24, 24] and all(r["stop_reason"] is None for r in runs)
    x0 = system.atoms.positions
    mm = np.arange(len(x0)) >= system.n_qm
    for start in starts:
        assert np.sqrt(np.mean((start.positions[mm] - x0[mm]) ** 2)) > 1e-3  # the environment moved
        assert np.abs(start.get_momenta()).max() > 0
    assert np.sqrt(np.mean((starts[0].positions - starts[1].positions) ** 2)) > 1e-3  # independent replicas
    direct = run_mlp_md(system, ensemble_potential(system, ensemble, embedding=settings.embedding), steps=24,
                        timestep_fs=0.25, temperature_K=dyn.temperature, friction_per_fs=dyn.friction, stride=24,
                        seed=derive_seed(dyn.seed, stream="excited_ground", index=1), sigma_stop=1e5, sigma_action="warn",
                        max_force=1e6, sampler="t", iteration=0, source="t")
    assert np.allclose(direct.final_state.positions, starts[1].positions, atol=1e-6)
    out = tmp_path / "frames.extxyz"
    stats = excited_dynamics(structure, models, dyn, settings, str(out), "cpu", ground_models=models)
    assert stats.initial == {"initial": "ground_state_md", "ground_steps": 24}
    assert [r.ground_state["steps"] for r in stats.replicas] == [24, 24] and stats.n_frames == 4
    frames = ase.io.read(out, index=":")
    assert [f.info["replica"] for f in frames] == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="ground_state_md needs the ground-state ensemble"):
        excited_dynamics(structure, models, dyn, settings, str(out), "cpu")
