"""Covalent QM/MM boundaries: hydrogen link atoms and the boundary charges, defined once.

A QM selection may cut covalent bonds Q1–M1 (Q1 a QM atom, M1 an MM atom) between two sp3
carbons (four bonded neighbours each in the force field's topology), e.g. CA–CB of a side chain.
Every other cut — through a bond to N, O, S, H or another element, or to an sp2/sp carbon — is
refused (:func:`find_link_bonds`), as is an M1 bonded to several QM atoms.

**Link atoms.** Each cut bond gets a hydrogen L on the Q1–M1 line at a fixed ratio::

    R_L = R_Q1 + g (R_M1 − R_Q1),   g = d(C–H) / r0(Q1–M1)

with d(C–H) = :data:`LINK_BOND_ANG` (a methyl C–H) and r0 the force field's equilibrium length
of that bond, so at the MM equilibrium the link atom sits at a C–H bond length from Q1. L is a
QM atom for PySCF, for the xTB terms and for the model (it is part of every Frame, after the QM
atoms, see :mod:`mlmm.frames`) and no particle of the MM System. Its force F_L is handed to the
boundary atoms by the chain rule of that fixed ratio: F_Q1 += (1 − g) F_L, F_M1 += g F_L
(:func:`project_link_forces`), so the total force is −∇ of the total energy.

**Boundary charges** (charge shift, as in de Vries et al. and ChemShell's ``charge shift``, without
its dipole correction): M1's force-field charge is removed and spread evenly over the M2 atoms (the
MM atoms bonded to M1); the QM atoms' force-field charges are replaced by the QM region with its
integer charge ``system.qm_charge``, and the difference Σ q_ff(QM) − qm_charge is spread over the
same M2 atoms of the residue, so every MM residue keeps an integer charge and the whole system its
total charge (:func:`boundary_charges`). These charges are the System's ``charges_e``: the ones the
labels, the model input and the MM force field (MM–MM Coulomb, its 1-4 terms rescaled,
:func:`mlmm.mm.partition`) all use. The QM atoms' force-field charges must lie within
:data:`CHARGE_TOLERANCE_E` of ``qm_charge`` (ff14SB side chains cut at CA–CB deviate by up to
0.14 e, Asp), otherwise the cut takes part of a charged group and is refused.

Bonded MM terms: those with at least one MM atom stay (the Q1–M1 bond, the angles and torsions
across the boundary), those entirely inside the QM region go; Lennard-Jones between QM and MM atoms
stays, with the force field's 1-2/1-3 exclusions and 1-4 scaling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

#: C–H bond length (Å) of the link hydrogens at the MM equilibrium of the cut bond.
LINK_BOND_ANG = 1.09
#: Largest |Σ q_ff(QM atoms) − qm_charge| (e) a covalent cut may leave for the boundary charges.
CHARGE_TOLERANCE_E = 0.2


@dataclass(frozen=True)
class LinkBond:
    """One cut bond Q1–M1 (mlmm indices of the full system) and its link atom's ratio g."""

    qm: int  #: Q1, the QM atom
    mm: int  #: M1, the MM atom the link hydrogen replaces
    ratio: float  #: g of R_L = R_Q1 + g (R_M1 − R_Q1)
    neighbours: tuple[int, ...]  #: M2, the MM atoms bonded to M1 (they receive the boundary charges)


def describe(index: int, names: Sequence[str], resnames: Sequence[str], resids: Sequence[int]) -> str:
    """An atom for messages: name (residue resid, index i)."""
    return f"{names[index]} ({resnames[index]} {resids[index]}, index {index})"


def find_link_bonds(
    cut: Sequence[tuple[int, int]],
    bonds: Sequence[tuple[int, int]],
    elements: Sequence[str],
    in_qm: np.ndarray,
    r0_ang: dict[tuple[int, int], float],
    label,
    where: str,
) -> list[LinkBond]:
    """The link bonds of the cut bonds ``cut`` (QM atom, MM atom), or one ValueError naming every
    refused bond and why.

    ``bonds``: all bonds of the topology; ``elements``/``in_qm`` per atom; ``r0_ang``: the force
    field's equilibrium length of each bond (key: sorted pair); ``label(i)``: an atom's name for
    messages; indices are in one numbering (file order) throughout.
    """
    neighbours: dict[int, set[int]] = {}
    for a, b in bonds:
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)

    def kind(i: int) -> str | None:
        """Why atom i cannot be a boundary atom (None: an sp3 carbon)."""
        if elements[i] != "C":
            return f"{elements[i]} is not carbon"
        if len(neighbours.get(i, ())) != 4:
            return f"a carbon with {len(neighbours.get(i, ()))} bonded neighbours (not sp3)"
        return None

    problems: list[str] = []
    links: list[LinkBond] = []
    for q1, m1 in cut:
        why = [f"{label(i)}: {k}" for i in (q1, m1) if (k := kind(i)) is not None]
        qm_partners = sorted(j for j in neighbours.get(m1, ()) if in_qm[j])
        if len(qm_partners) > 1:
            why.append(f"MM atom {label(m1)} is bonded to {len(qm_partners)} QM atoms (put it in the QM region)")
        key = (min(q1, m1), max(q1, m1))
        if key not in r0_ang:
            why.append("the force field has no harmonic bond term for it (needed for the link-atom position)")
        if why:
            problems.append(f"{label(q1)} – {label(m1)}: " + "; ".join(why))
            continue
        m2 = tuple(sorted(j for j in neighbours[m1] if not in_qm[j]))
        links.append(LinkBond(qm=int(q1), mm=int(m1), ratio=LINK_BOND_ANG / r0_ang[key], neighbours=m2))
    if problems:
        raise ValueError(
            f"{where}: link atoms cut only single bonds between sp3 carbons (e.g. CA–CB); the QM selection cuts "
            f"{len(problems)} bond(s) that cannot carry a link atom (QM atom first, 0-based indices in file order): "
            + " | ".join(problems)
        )
    return links


def boundary_charges(
    charges_e: np.ndarray,
    links: Sequence[LinkBond],
    in_qm: np.ndarray,
    residue: np.ndarray,
    qm_charge: int,
    where: str,
) -> np.ndarray:
    """Force-field charges (e) with the boundary scheme of the module docstring applied (QM atoms
    keep their force-field values here; the caller zeroes them). ``residue``: residue number per
    atom; one numbering (file order) throughout. Raises ValueError if the QM atoms' force-field
    charge is farther than :data:`CHARGE_TOLERANCE_E` from ``qm_charge``."""
    q = np.array(charges_e, float)
    deficit = float(q[in_qm].sum()) - int(qm_charge)
    if abs(deficit) > CHARGE_TOLERANCE_E:
        raise ValueError(
            f"{where}: the force-field charges of the QM atoms add up to {q[in_qm].sum():.4f} e, "
            f"{abs(deficit):.3f} e from system.qm_charge {qm_charge}; a covalent cut may leave at most "
            f"{CHARGE_TOLERANCE_E} e to the boundary charges (the cut splits a charged group: move it)"
        )
    for link in links:
        q[list(link.neighbours)] += q[link.mm] / len(link.neighbours)
        q[link.mm] = 0.0
    # each cut residue's MM part gets back the charge its QM part lost, on its M2 atoms
    by_residue: dict[int, list[int]] = {}
    for link in links:
        by_residue.setdefault(int(residue[link.mm]), []).extend(link.neighbours)
    for res, m2 in by_residue.items():
        mm_part = (residue == res) & ~in_qm
        total = float(q[mm_part].sum())
        q[m2] += (round(total) - total) / len(m2)
    return q


def link_positions(qm_positions_ang: np.ndarray, mm_positions_ang: np.ndarray, ratios: np.ndarray) -> np.ndarray:
    """R_L = R_Q1 + g (R_M1 − R_Q1) (Å) for arrays (L, 3) of Q1 and M1 positions and (L,) ratios g."""
    ratios = np.asarray(ratios, float)[:, None]
    return np.asarray(qm_positions_ang, float) + ratios * (np.asarray(mm_positions_ang, float) - qm_positions_ang)


def project_link_forces(forces: np.ndarray, link_forces: np.ndarray, qm: np.ndarray, mm: np.ndarray,
                        ratios: np.ndarray) -> np.ndarray:
    """``forces`` (N, 3) with the link atoms' forces (L, 3) handed to Q1 (1 − g) and M1 (g) (chain
    rule of :func:`link_positions`); ``qm``/``mm`` (L,) index ``forces``."""
    out = np.array(forces, float)
    g = np.asarray(ratios, float)[:, None]
    np.add.at(out, np.asarray(qm, int), (1.0 - g) * link_forces)
    np.add.at(out, np.asarray(mm, int), g * link_forces)
    return out
