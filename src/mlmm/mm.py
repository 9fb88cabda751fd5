"""Classical (MM) part of the QM/MM potential: TIP3P water and the QM–MM Lennard-Jones terms.

``MMForceField`` = rigid TIP3P water–water (same functional form as ``ase.calculators.tip3p``:
all 9 site–site Coulomb terms plus O–O Lennard-Jones, multiplied by a cubic switch of the O–O
distance) + QM–MM Lennard-Jones (Lorentz–Berthelot) + optionally mechanical-embedding Coulomb
between fixed QM charges and the MM charges. QM–MM terms are switched per (QM atom, MM molecule)
pair on the distance between the QM atom and the molecule's O, so each neutral water enters or
leaves as a whole and the energy is C¹-continuous. Minimum image in orthorhombic boxes.

The QM term and the full-system calculator that combines both are in :mod:`mlmm.potentials`.
"""

from __future__ import annotations

import numba
import numpy as np
from scipy.spatial import cKDTree

from mlmm.system import System, minimum_image
from mlmm.units import COULOMB_EV_ANGSTROM


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


class VerletPairList:
    """O–O pairs within cutoff + skin (Å), reused until an oxygen has moved more than skin/2.

    Between rebuilds no pair can come closer than the cutoff unnoticed: two O atoms that each moved
    less than skin/2 changed their distance by less than the skin. Minimum image in an orthorhombic
    box (``box_ang``; None: no PBC). Positions jumping by a box vector (re-wrapping) force a rebuild.
    """

    def __init__(self, cutoff_ang: float, skin_ang: float, box_ang: np.ndarray | None) -> None:
        if skin_ang < 0:
            raise ValueError(f"VerletPairList: skin must be >= 0 Å, got {skin_ang}")
        self.reach_ang = float(cutoff_ang) + float(skin_ang)
        self.skin_ang = float(skin_ang)
        self.box = box_ang
        self._reference: np.ndarray | None = None
        self._pairs = np.zeros((0, 2), np.int64)
        self.n_builds = 0

    def pairs(self, oxygens_ang: np.ndarray) -> np.ndarray:
        """(P, 2) index pairs i < j whose O–O distance may be below the cutoff."""
        if self._reference is None or self._reference.shape != oxygens_ang.shape or (
            np.max(np.sum((oxygens_ang - self._reference) ** 2, axis=1)) > (0.5 * self.skin_ang) ** 2
        ):
            self._build(oxygens_ang)
        return self._pairs

    def _build(self, oxygens_ang: np.ndarray) -> None:
        if self.box is not None:
            wrapped = np.mod(oxygens_ang, self.box)
            tree = cKDTree(np.where(wrapped >= self.box, 0.0, wrapped), boxsize=self.box)
        else:
            tree = cKDTree(oxygens_ang)
        self._pairs = tree.query_pairs(self.reach_ang, output_type="ndarray").astype(np.int64)
        self._reference = oxygens_ang.copy()
        self.n_builds += 1


@numba.njit(cache=True)
def _water_water_kernel(
    sites: np.ndarray, pairs: np.ndarray, box: np.ndarray, periodic: bool, charges: np.ndarray,
    sigma_o: float, epsilon_o: float, cutoff: float, width: float, ke: float, forces: np.ndarray,
) -> float:  # pragma: no cover - compiled; checked against ASE's TIP3P and finite differences
    """Switched TIP3P water–water energy (eV) over candidate O–O ``pairs``; adds site forces (eV/Å).

    Same terms as ase.calculators.tip3p: 9 site–site Coulomb terms + O–O LJ per molecule pair,
    times the cubic switch of the O–O distance (``switch``); pairs beyond ``cutoff`` are skipped.
    """
    energy = 0.0
    d = np.empty(3)
    v = np.empty(3)
    f_i = np.empty((3, 3))
    f_j = np.empty((3, 3))
    for p in range(pairs.shape[0]):
        i, j = pairs[p, 0], pairs[p, 1]
        for k in range(3):
            d[k] = sites[j, 0, k] - sites[i, 0, k]
            if periodic:
                d[k] -= box[k] * np.round(d[k] / box[k])
        r_oo = np.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
        if r_oo >= cutoff:
            continue
        y = min(max((r_oo - cutoff + width) / width, 0.0), 1.0)
        t = 1.0 - y * y * (3.0 - 2.0 * y)
        dt = -6.0 * y * (1.0 - y) / width
        e_pair = 0.0
        f_i[:] = 0.0
        f_j[:] = 0.0
        for a in range(3):
            for b in range(3):
                for k in range(3):  # site a of i -> site b of j, in j's image next to i
                    v[k] = sites[j, b, k] - sites[j, 0, k] + d[k] + sites[i, 0, k] - sites[i, a, k]
                r2 = v[0] * v[0] + v[1] * v[1] + v[2] * v[2]
                e = ke * charges[i, a] * charges[j, b] / np.sqrt(r2)
                fmag = e / r2
                if a == 0 and b == 0:
                    c6 = (sigma_o * sigma_o / r2) ** 3
                    e += 4.0 * epsilon_o * (c6 * c6 - c6)
                    fmag += 24.0 * epsilon_o * (2.0 * c6 * c6 - c6) / r2
                e_pair += e
                for k in range(3):
                    f_j[b, k] += t * fmag * v[k]
                    f_i[a, k] -= t * fmag * v[k]
        energy += t * e_pair
        for k in range(3):
            f_sw = -e_pair * dt / r_oo * d[k]  # switching force on O_j
            f_j[0, k] += f_sw
            f_i[0, k] -= f_sw
        for a in range(3):
            for k in range(3):
                forces[i, a, k] += f_i[a, k]
                forces[j, a, k] += f_j[a, k]
    return energy


class MMForceField:
    """TIP3P water–water + QM–MM LJ (+ fixed-charge QM–MM Coulomb); energies eV, forces eV/Å.

    The water–water term is a compiled loop over a Verlet pair list (``pair_skin_ang``), so an MD
    step does not rebuild the O–O neighbour search nor allocate per-pair arrays.
    """

    def __init__(
        self,
        system: System,
        cutoff_ang: float = 9.0,
        switch_width_ang: float = 1.0,
        qm_charges_e: np.ndarray | None = None,
        pair_skin_ang: float = 1.0,
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
        self.pair_list = VerletPairList(self.cutoff_ang, pair_skin_ang, box)
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
        pairs = self.pair_list.pairs(sites[:, 0])
        if len(pairs) == 0:
            return 0.0
        o = self.water[0, 0]
        return _water_water_kernel(
            sites, pairs, np.zeros(3) if self.box is None else self.box, self.box is not None,
            self.site_charges, float(self.system.lj_sigma_ang[o]), float(self.system.lj_epsilon_ev[o]),
            self.cutoff_ang, self.switch_width_ang, COULOMB_EV_ANGSTROM, forces_sites,
        )

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
