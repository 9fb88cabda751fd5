"""Uncertainty-biased exploration: MLP/MM MD pushed towards high committee disagreement.

Following the uncertainty-as-collective-variable idea of Tan, Dietschreit and Gómez-Bombarelli
(J. Chem. Phys. 162, 034114 (2025)), the committee's energy variance

    σ_E² = Σ_m (E_m − Ē)² / (M − 1)      (eV², M members)

is the CV. Two biases on it (``al.bias.kind``):

``metadynamics`` (:class:`UncertaintyMetadynamics`): the CV u = sqrt(σ_E²/N_QM + ε²) (eV, ε =
:data:`CV_EPS_EV` keeps it differentiable where the members agree) is handed to a PLUMED kernel
as an ``EXTRACV`` and biased by well-tempered ``METAD`` (HILLS/COLVAR in the walker's folder);
the kernel returns −dV/du and the atoms get F = −dV/du · ∇u, with ∇u = ∇σ_E²/(2 N_QM u). The
bias grows wherever the walker has been, so it keeps pushing into regions of higher disagreement
until σ reaches the walker's ``sigma_stop``.

``sigma``: a static bounded bias that lowers the energy where σ_E² is large (the
uncertainty-driven dynamics form of Kulichenko et al., Nat. Comput. Sci. 3, 230 (2023)):

    E_bias = A · (exp(−σ_E² / (N_QM · B²)) − 1),   A = ``strength_ev`` ≥ 0, B = ``width_ev`` > 0.

It is 0 where the members agree and tends to −A where they disagree strongly, so walkers are
drawn towards uncertain regions without running away. Its forces are analytic from the members'
energies and forces (no second derivatives):

    ∇σ_E² = −2/(M−1) · Σ_m (E_m − Ē) F_m,    F_bias = −∇E_bias = (A e^{−s} / (N_QM B²)) ∇σ_E²,

on every Frame atom (QM atoms and MM sites, through the field input). The unbiased force σ
(``sigma_force``) is passed through unchanged, so selection still uses the real uncertainty.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from mlmm.frames import qm_mask
from mlmm.settings import BiasSettings
from mlmm.units import KJ_PER_MOL_TO_EV

#: Floor of the uncertainty CV u = sqrt(σ_E²/N_QM + ε²) (eV): u and ∇u stay finite at σ_E = 0.
CV_EPS_EV = 1.0e-4


def energy_variance(energies_ev: np.ndarray, member_forces: np.ndarray) -> tuple[float, np.ndarray]:
    """(σ_E² eV², ∇σ_E² (n_atoms, 3) eV²/Å) from member energies (M,) eV and forces (M, n, 3) eV/Å.

    ∇σ_E² = −2/(M−1) Σ_m (E_m − Ē) F_m, since F_m = −∇E_m (no second derivatives needed).
    """
    e = np.asarray(energies_ev, float)
    f = np.asarray(member_forces, float)
    m = len(e)
    if m < 2:
        raise ValueError("uncertainty bias: needs an ensemble of at least 2 members")
    de = e - e.mean()
    return float(de @ de / (m - 1)), -2.0 / (m - 1) * np.einsum("m,mnk->nk", de, f)


def sigma_bias(energies_ev: np.ndarray, member_forces: np.ndarray, n_qm: int, strength_ev: float,
               width_ev: float) -> tuple[float, np.ndarray, float]:
    """(E_bias eV, F_bias (n_atoms, 3) eV/Å, σ_E² eV²) from member energies (M,) and forces (M, n, 3)."""
    var, grad_var = energy_variance(energies_ev, member_forces)
    s = var / (n_qm * width_ev**2)
    energy = strength_ev * (np.exp(-s) - 1.0)
    forces = strength_ev * np.exp(-s) / (n_qm * width_ev**2) * grad_var
    return float(energy), forces, var


class SigmaBiasedEnsemble:
    """QM term (``compute(frame)``) = ensemble mean + σ_E² bias; see module docstring."""

    def __init__(self, ensemble, strength_ev: float, width_ev: float) -> None:
        if strength_ev < 0 or width_ev <= 0:
            raise ValueError(f"sigma bias: need strength >= 0 and width > 0 (got {strength_ev}, {width_ev})")
        self.ensemble = ensemble
        self.strength_ev = float(strength_ev)
        self.width_ev = float(width_ev)

    def compute(self, frame: Atoms) -> dict[str, Any]:
        out = dict(self.ensemble.compute(frame))
        e_b, f_b, var = sigma_bias(out["energies"], out["member_forces"], int(qm_mask(frame).sum()),
                                   self.strength_ev, self.width_ev)
        out["unbiased_energy"] = out["energy"]
        out["energy"] = out["energy"] + e_b
        out["forces"] = out["forces"] + f_b
        out["bias_energy"] = e_b
        out["sigma_energy"] = float(np.sqrt(var))
        return out


def uncertainty_cv(energies_ev: np.ndarray, member_forces: np.ndarray, n_qm: int) -> tuple[float, np.ndarray]:
    """(u eV, ∇u (n_atoms, 3) 1/Å·eV): u = sqrt(σ_E²/N_QM + ε²), the CV of :class:`UncertaintyMetadynamics`."""
    var, grad_var = energy_variance(energies_ev, member_forces)
    u = float(np.sqrt(var / n_qm + CV_EPS_EV**2))
    return u, grad_var / (2.0 * n_qm * u)


class UncertaintyMetadynamics:
    """QM term (``compute(frame)``) = ensemble mean + well-tempered metadynamics on the uncertainty CV u.

    A PLUMED kernel of its own (:class:`mlmm.engines.plumed.PlumedBias` on one placeholder atom that no
    action reads; the CV comes in through ``EXTRACV``) deposits a
    hill of ``height_kj_mol`` and width ``cv_width_ev`` every ``pace`` MD steps with bias factor
    ``biasfactor`` at ``temperature_K``; HILLS_uncertainty, COLVAR_uncertainty and
    plumed_uncertainty.log go to ``out_dir``. A call at the same positions as the previous one
    (the driver re-evaluating a saved step) does not advance the step or deposit a hill. The
    unbiased ``sigma_force`` is passed through, so selection and ``sigma_stop`` see the real
    uncertainty; ``energy``/``forces`` include the bias, ``unbiased_energy`` does not.
    """

    def __init__(self, ensemble, *, height_kj_mol: float, cv_width_ev: float, pace: int, biasfactor: float,
                 temperature_K: float, timestep_fs: float, out_dir: str | Path) -> None:
        from mlmm.engines.plumed import PlumedBias

        if height_kj_mol <= 0 or cv_width_ev <= 0 or pace < 1 or biasfactor <= 1:
            raise ValueError("al.bias (metadynamics): need height > 0, cv_width > 0, pace >= 1 and biasfactor > 1 "
                             f"(got {height_kj_mol}, {cv_width_ev}, {pace}, {biasfactor})")
        self.ensemble = ensemble
        self.out_dir = Path(out_dir).resolve()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for stale in ("HILLS_uncertainty", "COLVAR_uncertainty"):
            (self.out_dir / stale).unlink(missing_ok=True)  # PLUMED would append to them
        self.lines = [
            "u: EXTRACV NAME=u",
            f"metad: METAD ARG=u SIGMA={cv_width_ev:g} HEIGHT={height_kj_mol:g} PACE={int(pace)} "
            f"BIASFACTOR={biasfactor:g} FILE={self.out_dir / 'HILLS_uncertainty'}",
            f"PRINT ARG=u,metad.bias STRIDE={int(pace)} FILE={self.out_dir / 'COLVAR_uncertainty'}",
        ]
        self.kernel = PlumedBias(self.lines, masses_amu=np.ones(1), charges_e=np.zeros(1), timestep_fs=timestep_fs,
                                 temperature_K=temperature_K, log_file=self.out_dir / "plumed_uncertainty.log")
        self.step = -1
        self._last_positions: np.ndarray | None = None

    def compute(self, frame: Atoms) -> dict[str, Any]:
        out = dict(self.ensemble.compute(frame))
        u, grad_u = uncertainty_cv(out["energies"], out["member_forces"], int(qm_mask(frame).sum()))
        update = self._last_positions is None or self._last_positions.shape != frame.positions.shape or not np.array_equal(
            self._last_positions, frame.positions)
        if update:
            self.step += 1
            self._last_positions = frame.positions.copy()
        v_kj, _, cv_forces = self.kernel.compute(np.zeros((1, 3)), None, self.step, update, extra_cvs={"u": u})
        out["unbiased_energy"] = out["energy"]
        out["energy"] = out["energy"] + v_kj * KJ_PER_MOL_TO_EV
        out["forces"] = out["forces"] + cv_forces["u"] * KJ_PER_MOL_TO_EV * grad_u
        out["bias_energy"] = v_kj * KJ_PER_MOL_TO_EV
        out["uncertainty_cv"] = u
        return out

    def finalize(self) -> None:
        """Flush PLUMED's HILLS and COLVAR (once)."""
        self.kernel.finalize()


def biased_term(ensemble, bias: BiasSettings | None, *, temperature_K: float | None = None,
                timestep_fs: float | None = None, out_dir: str | Path | None = None):
    """The QM term for exploration: the ensemble itself (no bias, or kind ``none``), the σ-biased
    wrapper (``sigma``) or uncertainty metadynamics (``metadynamics``: needs the walker's
    ``temperature_K``, ``timestep_fs`` and a folder ``out_dir`` for PLUMED's files)."""
    if bias is None or bias.kind == "none":
        return ensemble
    if bias.kind == "sigma":
        return SigmaBiasedEnsemble(ensemble, bias.strength, bias.width)
    if bias.kind == "metadynamics":
        if temperature_K is None or timestep_fs is None or out_dir is None:
            raise ValueError("al.bias.kind metadynamics: the walker's temperature, timestep and output folder are needed")
        return UncertaintyMetadynamics(ensemble, height_kj_mol=bias.height, cv_width_ev=bias.cv_width, pace=bias.pace,
                                       biasfactor=bias.biasfactor, temperature_K=temperature_K, timestep_fs=timestep_fs,
                                       out_dir=out_dir)
    raise ValueError(f"al.bias.kind must be 'none', 'sigma' or 'metadynamics', got {bias.kind!r}")
