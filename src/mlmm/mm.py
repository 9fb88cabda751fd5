"""Classical part of the QM/MM potential and the full-system ASE calculator.

``MMForceField`` = rigid TIP3P water–water (same functional form as ``ase.calculators.tip3p``:
all 9 site–site Coulomb terms plus O–O Lennard-Jones, multiplied by a cubic switch of the O–O
distance) + QM–MM Lennard-Jones (Lorentz–Berthelot) + optionally mechanical-embedding Coulomb
between fixed QM charges and the MM charges. QM–MM terms are switched per (QM atom, MM molecule)
pair on the distance between the QM atom and the molecule's O, so each neutral water enters or
leaves as a whole and the energy is C¹-continuous. Minimum image in orthorhombic boxes.

``QMMMCalculator`` adds a QM term (xTB or the ML ensemble) evaluated on the cut Frame.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from scipy.spatial import cKDTree

from mlmm.system import System, minimum_image
from mlmm.units import COULOMB_EV_ANGSTROM


class QMTerm(Protocol):
    """QM part of the potential evaluated on a Frame (see docs/CONTRACTS.md)."""

    def compute(self, frame: Atoms) -> dict[str, Any]:
        """Return ``energy`` (eV), ``forces`` ((n_frame, 3) eV/Å), optional ``sigma_force`` (eV/Å)."""
        ...


def switch(d_ang: np.ndarray, cutoff_ang: float, width_ang: float) -> tuple[np.ndarray, np.ndarray]:
    """Cubic switch t(d) (1 below cutoff-width, 0 beyond cutoff, C¹) and dt/dd (1/Å)."""
    y = np.clip((d_ang - cutoff_ang + width_ang) / width_ang, 0.0, 1.0)
    return 1.0 - y * y * (3.0 - 2.0 * y), -6.0 * y * (1.0 - y) / width_ang


def _accumulate(forces: np.ndarray, index: np.ndarray, values: np.ndarray) -> None:
    """forces[index] += values with repeated indices summed (bincount per component)."""
    n = len(forces)
    for k in range(3):
        forces[:, k] += np.bincount(index, weights=values[:, k], minlength=n)


def default_mm_cutoff(system: System, preferred_ang: float = 9.0) -> float:
    """MM cutoff (Å): ``preferred_ang``, but at most half the shortest box edge (minimum image)."""
    box = system.box_ang
    return preferred_ang if box is None else min(preferred_ang, 0.5 * float(box.min()))


class MMForceField:
    """TIP3P water–water + QM–MM LJ (+ fixed-charge QM–MM Coulomb); energies eV, forces eV/Å."""

    def __init__(
        self,
        system: System,
        cutoff_ang: float = 9.0,
        switch_width_ang: float = 1.0,
        qm_charges_e: np.ndarray | None = None,
    ) -> None:
        is_water = np.zeros(len(system.atoms), bool)
        is_water[np.asarray(system.water_molecules, int).ravel()] = True
        if not is_water[system.n_qm :].all():
            other = sorted({str(r) for r in np.asarray(system.resnames)[system.n_qm :][~is_water[system.n_qm :]]})
            raise ValueError(f"{system.source}: MMForceField handles water-only MM environments; non-water MM residues {other}")
        if not 0 < switch_width_ang <= cutoff_ang:
            raise ValueError(f"MMForceField: need 0 < switch_width_ang ({switch_width_ang}) <= cutoff_ang ({cutoff_ang})")
        box = system.box_ang
        if box is not None:
            if not system.atoms.pbc.all():
                raise ValueError(f"{system.source}: mixed periodicity {system.atoms.pbc.tolist()} is not supported")
            if cutoff_ang > 0.5 * box.min():
                raise ValueError(f"{system.source}: MM cutoff {cutoff_ang} Å exceeds half the shortest box edge ({0.5 * box.min():.2f} Å)")
        if qm_charges_e is not None:
            qm_charges_e = np.asarray(qm_charges_e, float)
            if qm_charges_e.shape != (system.n_qm,):
                raise ValueError(f"MMForceField: qm_charges_e has shape {qm_charges_e.shape}, expected ({system.n_qm},)")
        self.system = system
        self.cutoff_ang = float(cutoff_ang)
        self.switch_width_ang = float(switch_width_ang)
        self.qm_charges_e = qm_charges_e
        self.box = box
        self.water = np.asarray(system.water_molecules, int).reshape(-1, 3)  # (M, 3) O, H, H
        self.site_charges = system.charges_e[self.water]  # (M, 3)
        sigma, eps = system.lj_sigma_ang, system.lj_epsilon_ev
        qs, qe = system.qm_lj_params
        # Lorentz–Berthelot QM atom x water site: (n_qm, 3) using the first water's O, H, H
        # parameters (all waters are TIP3P here).
        if len(self.water):
            w = self.water[0]
            self.qm_site_sigma = 0.5 * (qs[:, None] + sigma[w][None, :])
            self.qm_site_eps = np.sqrt(qe[:, None] * eps[w][None, :])

    def _water_sites(self, pos: np.ndarray) -> np.ndarray:
        """Water site positions (M, 3, 3) with each molecule made whole around its O."""
        sites = pos[self.water]
        sites[:, 1:] = sites[:, :1] + minimum_image(sites[:, 1:] - sites[:, :1], self.box)
        return sites

    def _water_water(self, sites: np.ndarray, forces_sites: np.ndarray) -> float:
        """Switched TIP3P water–water energy (eV); adds site forces into ``forces_sites``."""
        oxy = sites[:, 0]
        rc, w = self.cutoff_ang, self.switch_width_ang
        if self.box is not None:
            wrapped = np.mod(oxy, self.box)
            tree = cKDTree(np.where(wrapped >= self.box, 0.0, wrapped), boxsize=self.box)
        else:
            tree = cKDTree(oxy)
        pairs = tree.query_pairs(rc, output_type="ndarray")
        if len(pairs) == 0:
            return 0.0
        i, j = pairs[:, 0], pairs[:, 1]
        d_oo_raw = oxy[j] - oxy[i]
        d_oo = minimum_image(d_oo_raw, self.box)
        shift = d_oo - d_oo_raw
        r_oo = np.linalg.norm(d_oo, axis=1)
        t, dt = switch(r_oo, rc, w)
        # site-site vectors (P, 3a, 3b, 3): from site a of i to site b of j
        vec = sites[j][:, None, :, :] + shift[:, None, None, :] - sites[i][:, :, None, :]
        r2 = np.einsum("pabk,pabk->pab", vec, vec)
        r = np.sqrt(r2)
        qq = COULOMB_EV_ANGSTROM * self.site_charges[i][:, :, None] * self.site_charges[j][:, None, :]
        e_coul = qq / r
        sig_o = self.system.lj_sigma_ang[self.water[0, 0]]
        eps_o = self.system.lj_epsilon_ev[self.water[0, 0]]
        c6 = (sig_o**2 / r2[:, 0, 0]) ** 3
        e_lj = 4.0 * eps_o * (c6 * c6 - c6)
        e_pair = e_coul.reshape(-1, 9).sum(axis=1) + e_lj
        energy = float(np.dot(t, e_pair))
        # -dE/dvec for site pairs (force on site b of j; opposite on site a of i)
        fmag = e_coul / r2
        fmag[:, 0, 0] += 24.0 * eps_o * (2.0 * c6 * c6 - c6) / r2[:, 0, 0]
        weight = t[:, None, None] * fmag
        f_j = np.einsum("pab,pabk->pbk", weight, vec)  # (P, 3b, 3)
        f_i = -np.einsum("pab,pabk->pak", weight, vec)  # (P, 3a, 3)
        f_sw = -(e_pair * dt / r_oo)[:, None] * d_oo  # switching force on O_j
        f_j[:, 0] += f_sw
        f_i[:, 0] -= f_sw
        flat = forces_sites.reshape(-1, 3)
        _accumulate(flat, (3 * j[:, None] + np.arange(3)).ravel(), f_j.reshape(-1, 3))
        _accumulate(flat, (3 * i[:, None] + np.arange(3)).ravel(), f_i.reshape(-1, 3))
        return energy

    def _qm_water(self, qm: np.ndarray, sites: np.ndarray, forces_qm: np.ndarray, forces_sites: np.ndarray) -> float:
        """Switched QM–water LJ (+ fixed-charge Coulomb) energy (eV); adds forces in place."""
        rc, w = self.cutoff_ang, self.switch_width_ang
        d_raw = sites[None, :, 0, :] - qm[:, None, :]  # QM atom -> O, (n_qm, M, 3)
        d = minimum_image(d_raw, self.box)
        r_o = np.linalg.norm(d, axis=2)
        qi, mi = np.nonzero(r_o < rc)
        if len(qi) == 0:
            return 0.0
        d, r_o = d[qi, mi], r_o[qi, mi]
        shift = d - d_raw[qi, mi]
        t, dt = switch(r_o, rc, w)
        vec = sites[mi] + shift[:, None, :] - qm[qi][:, None, :]  # (P, 3, 3) QM atom -> site
        r2 = np.einsum("pbk,pbk->pb", vec, vec)
        sig, eps = self.qm_site_sigma[qi], self.qm_site_eps[qi]
        c6 = (sig * sig / r2) ** 3
        e_site = 4.0 * eps * (c6 * c6 - c6)
        fmag = 24.0 * eps * (2.0 * c6 * c6 - c6) / r2
        if self.qm_charges_e is not None:
            r = np.sqrt(r2)
            e_coul = COULOMB_EV_ANGSTROM * self.qm_charges_e[qi][:, None] * self.site_charges[mi] / r
            e_site = e_site + e_coul
            fmag = fmag + e_coul / r2
        e_pair = e_site.sum(axis=1)
        energy = float(np.dot(t, e_pair))
        f_site = (t[:, None] * fmag)[..., None] * vec  # force on MM site (P, 3, 3)
        f_sw = -(e_pair * dt / r_o)[:, None] * d  # switching force on O
        f_site[:, 0] += f_sw
        _accumulate(forces_sites.reshape(-1, 3), (3 * mi[:, None] + np.arange(3)).ravel(), f_site.reshape(-1, 3))
        _accumulate(forces_qm, qi, -f_site.sum(axis=1))
        return energy

    def energy_forces(self, positions_ang: np.ndarray) -> tuple[float, np.ndarray]:
        """MM energy (eV) and forces (eV/Å) on every atom of the full system."""
        pos = np.asarray(positions_ang, float)
        forces = np.zeros_like(pos)
        if len(self.water) == 0:
            return 0.0, forces
        n_qm = self.system.n_qm
        sites = self._water_sites(pos)
        f_sites = np.zeros_like(sites)
        f_qm = np.zeros((n_qm, 3))
        energy = self._water_water(sites, f_sites)
        energy += self._qm_water(self.system.whole_qm_positions(pos), sites, f_qm, f_sites)
        forces[:n_qm] = f_qm
        forces[self.water.ravel()] += f_sites.reshape(-1, 3)
        return energy, forces


class QMMMCalculator(Calculator):
    """ASE calculator for the full system: QM term on the cut Frame + MM force field.

    ``results`` hold ``energy``/``forces`` (eV, eV/Å) plus ``qm_energy``, ``mm_energy`` and the QM
    term's ``sigma_force`` (eV/Å) when it gives one.
    """

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, system: System, qm_term: QMTerm, mm_ff: MMForceField, cutoff_ang: float) -> None:
        super().__init__()
        self.system = system
        self.qm_term = qm_term
        self.mm_ff = mm_ff
        self.cutoff_ang = float(cutoff_ang)

    def calculate(self, atoms: Atoms | None = None, properties: list[str] | None = None,
                  system_changes: list[str] = all_changes) -> None:
        """Evaluate QM term on the cut Frame and the MM force field on all atoms."""
        super().calculate(atoms, properties or ["energy"], system_changes)
        pos = self.atoms.positions
        frame, index = self.system.cut_frame(
            pos, self.cutoff_ang, sampler="qmmm_calculator", iteration=0, source=self.system.source, seed=0
        )
        qm = self.qm_term.compute(frame)
        e_mm, forces = self.mm_ff.energy_forces(pos)
        forces[index] += np.asarray(qm["forces"], float)
        e_qm = float(qm["energy"])
        self.results = {
            "energy": e_qm + e_mm,
            "free_energy": e_qm + e_mm,
            "forces": forces,
            "qm_energy": e_qm,
            "mm_energy": e_mm,
        }
        if qm.get("sigma_force") is not None:
            self.results["sigma_force"] = float(qm["sigma_force"])
