"""Uncertainty-biased exploration: MLP/MM MD pushed towards high committee disagreement.

Following the uncertainty-as-collective-variable idea of Tan, Dietschreit and Gómez-Bombarelli
(J. Chem. Phys. 162, 034114 (2025)), the committee's energy variance

    σ_E² = Σ_m (E_m − Ē)² / (M − 1)      (eV², M members)

is the CV, and a bounded bias lowers the energy where it is large (the uncertainty-driven
dynamics form of Kulichenko et al., Nat. Comput. Sci. 3, 230 (2023)):

    E_bias = A · (exp(−σ_E² / (N_QM · B²)) − 1),   A = ``strength_ev`` ≥ 0, B = ``width_ev`` > 0.

It is 0 where the members agree and tends to −A where they disagree strongly, so walkers are
drawn towards uncertain regions without running away. Its forces are analytic from the members'
energies and forces (no second derivatives):

    ∇σ_E² = −2/(M−1) · Σ_m (E_m − Ē) F_m,    F_bias = −∇E_bias = (A e^{−s} / (N_QM B²)) ∇σ_E²,

on every Frame atom (QM atoms and MM sites, through the field input). The unbiased force σ
(``sigma_force``) is passed through unchanged, so selection still uses the real uncertainty.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ase import Atoms

from mlmm.frames import qm_mask
from mlmm.settings import BiasSettings


def sigma_bias(energies_ev: np.ndarray, member_forces: np.ndarray, n_qm: int, strength_ev: float,
               width_ev: float) -> tuple[float, np.ndarray, float]:
    """(E_bias eV, F_bias (n_atoms, 3) eV/Å, σ_E² eV²) from member energies (M,) and forces (M, n, 3)."""
    e = np.asarray(energies_ev, float)
    f = np.asarray(member_forces, float)
    m = len(e)
    if m < 2:
        raise ValueError("sigma bias: needs an ensemble of at least 2 members")
    de = e - e.mean()
    var = float(de @ de / (m - 1))
    grad_var = -2.0 / (m - 1) * np.einsum("m,mnk->nk", de, f)
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


def biased_term(ensemble, bias: BiasSettings | None):
    """The QM term for exploration: the ensemble itself (no bias, or kind ``none``) or the σ-biased wrapper."""
    if bias is None or bias.kind == "none":
        return ensemble
    if bias.kind == "sigma":
        return SigmaBiasedEnsemble(ensemble, bias.strength, bias.width)
    raise ValueError(f"al.bias.kind must be 'none' or 'sigma', got {bias.kind!r}")
