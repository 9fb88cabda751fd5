"""The full QM/MM system: structure + QM selection + MM charges/LJ, and the cut into Frames.

``load_system`` reads a PDB/GRO (optionally with a charge-carrying topology) with MDAnalysis and
reorders atoms so the QM atoms come first, then every MM molecule (residue) contiguously, water
as O, H, H. ``System.cut_frame`` turns full-system positions into the Frame contract of
:mod:`mlmm.frames`: the QM region made whole, plus every MM molecule the embedding
(:mod:`mlmm.embedding`) gives a weight > 0, placed at its minimum image relative to the QM region.

Periodic boxes must be orthorhombic (CRYST1 angles 90°); minimum image is exact for distances
below half the shortest box edge.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from ase import Atoms
from ase.constraints import FixBondLengths
from ase.data import atomic_numbers
from ase.geometry import find_mic

from mlmm.embedding import weights_of
from mlmm.frames import make_frame
from mlmm.settings import EmbeddingSettings
from mlmm.units import KCAL_PER_MOL_TO_EV

#: TIP3P partial charges (e) and Lennard-Jones parameters (Jorgensen et al. 1983, as in ASE's
#: TIP3P calculator): O sigma 3.15061 Å, epsilon 0.1521 kcal/mol; no LJ on H.
TIP3P_CHARGE_O_E: float = -0.834
TIP3P_CHARGE_H_E: float = 0.417
TIP3P_SIGMA_O_ANG: float = 3.15061
TIP3P_EPSILON_O_EV: float = 0.1521 * KCAL_PER_MOL_TO_EV
#: Rigid TIP3P geometry.
TIP3P_ROH_ANG: float = 0.9572
TIP3P_HOH_DEG: float = 104.52

#: Generic per-element Lennard-Jones parameters for QM atoms (and non-water MM atoms), from
#: GAFF (Wang et al., J. Comput. Chem. 25, 1157 (2004), gaff.dat) atom types hc, c3, n3, oh,
#: s, p5, f, cl, given there as (R*/2 in Å, epsilon in kcal/mol); sigma = 2 (R*/2) / 2^(1/6).
_GAFF_RSTAR_HALF_EPS: dict[str, tuple[float, float]] = {
    "H": (1.4870, 0.0157),
    "C": (1.9080, 0.1094),
    "N": (1.8240, 0.1700),
    "O": (1.7210, 0.2104),
    "S": (2.0000, 0.2500),
    "P": (2.1000, 0.2000),
    "F": (1.7500, 0.0610),
    "Cl": (1.9480, 0.2650),
}
#: element -> (sigma Å, epsilon eV)
ELEMENT_LJ: dict[str, tuple[float, float]] = {
    el: (2.0 * r / 2.0 ** (1.0 / 6.0), eps * KCAL_PER_MOL_TO_EV)
    for el, (r, eps) in _GAFF_RSTAR_HALF_EPS.items()
}

DEFAULT_WATER_RESNAMES: tuple[str, ...] = ("HOH", "WAT", "SOL", "TIP3")


def minimum_image(vectors_ang: np.ndarray, box_ang: np.ndarray | None) -> np.ndarray:
    """Minimum-image copies of difference vectors (…, 3) in an orthorhombic box (None: no PBC)."""
    if box_ang is None:
        return vectors_ang
    return vectors_ang - box_ang * np.round(vectors_ang / box_ang)


#: Bonds of a rigid water (O, H1, H2) = atoms 0, 1, 2: O–H1, O–H2, H1–H2.
_BOND_A = np.array([0, 0, 1])
_BOND_B = np.array([1, 2, 2])
#: sign of bond k's correction on atom i (+1 on its first atom, -1 on its second)
_SIGN = np.array([[1.0, 1.0, 0.0], [-1.0, 0.0, 1.0], [0.0, -1.0, -1.0]])


class ConstraintError(RuntimeError):
    """SHAKE could not restore the rigid-water geometry (a symptom of an exploding trajectory)."""


class RigidWaterConstraint(FixBondLengths):
    """Rigid waters as an ASE ``FixBondLengths`` (pairs O–H1, O–H2, H1–H2 per molecule).

    Same SHAKE/RATTLE conditions as ASE's class, but solved per molecule with the three bond
    multipliers at once, vectorised over all waters: Newton iterations on the 3×3 system for
    positions (quadratic convergence) and one exact 3×3 solve for momenta/forces. ASE's
    per-bond Python loop costs ~1 s per MD step for 200 waters; this costs ~1 ms.
    """

    maxiter = 50

    def __init__(self, triples: np.ndarray, tolerance: float = 1e-13, bondlengths: np.ndarray | None = None) -> None:
        triples = np.asarray(triples, int).reshape(-1, 3)
        pairs = np.stack([triples[:, _BOND_A], triples[:, _BOND_B]], axis=-1).reshape(-1, 2)
        super().__init__(pairs, tolerance=tolerance, bondlengths=bondlengths)

    @property
    def triples(self) -> np.ndarray:
        """(M, 3) atom indices O, H1, H2 (from the pairs, three per molecule)."""
        pairs = np.asarray(self.pairs, int).reshape(-1, 3, 2)
        return np.stack([pairs[:, 0, 0], pairs[:, 0, 1], pairs[:, 1, 1]], axis=1)

    def index_shuffle(self, atoms: Atoms, ind) -> None:
        """Restrict to a slice of the atoms, keeping the waters that lie wholly inside it."""
        mapping = np.zeros(len(atoms), int)
        mapping[ind] = 1
        n_kept = int(mapping.sum())
        mapping[:] = -1
        mapping[ind] = np.arange(n_kept)
        tri = mapping[self.triples]
        keep = (tri >= 0).all(axis=1)
        if not keep.any():
            raise IndexError("RigidWaterConstraint: no whole water in the slice")
        if self.bondlengths is not None:
            self.bondlengths = np.asarray(self.bondlengths).reshape(-1, 3)[keep].ravel()
        self.pairs = RigidWaterConstraint(tri[keep]).pairs

    def initialize_bond_lengths(self, atoms: Atoms) -> np.ndarray:
        """Current bond lengths (Å, minimum image), in pair order."""
        a, b = np.asarray(self.pairs, int).T
        _, lengths = find_mic(atoms.positions[a] - atoms.positions[b], atoms.cell, atoms.pbc)
        return lengths

    def _geometry(self, atoms: Atoms) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """triples (M,3), masses (M,3), raw and minimum-image bond vectors (M,3,3), C (M,3,3).

        C[m, k, l] is the change of bond k's vector per unit multiplier of bond l along bond l.
        """
        if self.bondlengths is None:
            self.bondlengths = self.initialize_bond_lengths(atoms)
        tri = self.triples
        masses = atoms.get_masses()[tri]
        pos = atoms.positions[tri]
        raw = pos[:, _BOND_A] - pos[:, _BOND_B]
        d0, _ = find_mic(raw.reshape(-1, 3), atoms.cell, atoms.pbc)
        inv = 1.0 / masses
        coupling = _SIGN[_BOND_A][None] * inv[:, _BOND_A, None] - _SIGN[_BOND_B][None] * inv[:, _BOND_B, None]
        return tri, masses, raw, d0.reshape(-1, 3, 3), coupling

    def adjust_positions(self, atoms: Atoms, new: np.ndarray) -> None:
        """SHAKE: move ``new`` (Å) in place so that every bond regains its fixed length."""
        tri, masses, raw, d0, coupling = self._geometry(atoms)
        c2 = np.asarray(self.bondlengths, float).reshape(-1, 3) ** 2
        lam = np.zeros(c2.shape)
        pos_u = new[tri]
        d_u = pos_u[:, _BOND_A] - pos_u[:, _BOND_B] - raw + d0
        for _ in range(self.maxiter):
            d = d_u + np.einsum("mkl,mli->mki", coupling * lam[:, None, :], d0)
            sigma = np.einsum("mki,mki->mk", d, d) - c2
            if not np.all(np.isfinite(sigma)):
                break
            if np.abs(sigma / c2).max() <= self.tolerance:
                break
            jac = 2.0 * coupling * np.einsum("mki,mli->mkl", d, d0)
            lam -= np.linalg.solve(jac, sigma[..., None])[..., 0]
        else:
            raise ConstraintError(f"RigidWaterConstraint: SHAKE did not converge in {self.maxiter} Newton steps")
        new[tri] = pos_u + np.einsum("mal,ml,mli->mai", _SIGN[None] / masses[:, :, None], lam, d0)

    def adjust_momenta(self, atoms: Atoms, p: np.ndarray) -> None:
        """RATTLE: remove in place the part of ``p`` that changes any bond length (exact 3×3 solve)."""
        tri, masses, _, d, coupling = self._geometry(atoms)
        v = p[tri] / masses[..., None]
        dv = v[:, _BOND_A] - v[:, _BOND_B]
        rhs = -np.einsum("mki,mki->mk", dv, d)
        mat = coupling * np.einsum("mki,mli->mkl", d, d)
        mu = np.linalg.solve(mat, rhs[..., None])[..., 0]
        p[tri] += np.einsum("al,ml,mli->mai", _SIGN, mu, d)


@dataclass
class System:
    """Full QM/MM system in mlmm order: QM atoms first, then MM molecules contiguously.

    Per-atom arrays follow ``atoms``; ``charges_e`` is 0 on QM atoms, ``molecule_index`` is -1 on
    QM atoms and numbers the MM molecules 0..M-1; ``lj_sigma_ang``/``lj_epsilon_ev`` are the LJ
    parameters (Lorentz–Berthelot mixing is applied by the force field).
    """

    atoms: Atoms
    n_qm: int
    charges_e: np.ndarray
    molecule_index: np.ndarray
    lj_sigma_ang: np.ndarray
    lj_epsilon_ev: np.ndarray
    qm_charge: int
    multiplicity: int
    water_molecules: list[tuple[int, int, int]]
    source: str = ""  #: structure file the system was read from
    original_index: np.ndarray | None = None  #: atom index in the structure file
    atom_names: np.ndarray | None = None
    resnames: np.ndarray | None = None
    resids: np.ndarray | None = None

    @property
    def box_ang(self) -> np.ndarray | None:
        """Orthorhombic box edge lengths (Å) if periodic, else None."""
        if not self.atoms.pbc.any():
            return None
        return np.asarray(self.atoms.cell.lengths(), float)

    @property
    def molecule_starts(self) -> np.ndarray:
        """First full-system index of each MM molecule, plus len(atoms) at the end (M+1,)."""
        mm_mol = self.molecule_index[self.n_qm :]
        starts = self.n_qm + np.flatnonzero(np.r_[True, np.diff(mm_mol) != 0]) if len(mm_mol) else np.array([], int)
        return np.r_[starts, len(self.atoms)].astype(int)

    @property
    def qm_lj_params(self) -> tuple[np.ndarray, np.ndarray]:
        """(sigma Å, epsilon eV) of the QM atoms: per-element GAFF defaults (see ELEMENT_LJ)."""
        return self.lj_sigma_ang[: self.n_qm].copy(), self.lj_epsilon_ev[: self.n_qm].copy()

    def whole_qm_positions(self, positions_ang: np.ndarray) -> np.ndarray:
        """QM positions (Å) made whole across the box: each atom is placed at the minimum image
        of its nearest already-placed QM atom (bonded neighbours are far below half the box)."""
        qm = np.array(positions_ang[: self.n_qm], float)
        box = self.box_ang
        if box is None:
            return qm
        for i in range(1, self.n_qm):
            d = minimum_image(qm[i] - qm[:i], box)
            j = int(np.argmin(np.einsum("ij,ij->i", d, d)))
            qm[i] = qm[j] + d[j]
        return qm

    def cut_frame(self, positions_ang: np.ndarray, embedding: EmbeddingSettings, **info: Any) -> tuple[Atoms, np.ndarray]:
        """Frame of the QM region (made whole) plus every MM molecule whose embedding weight
        (:mod:`mlmm.embedding`, with ``embedding``) is > 0 — those with an atom closer than
        ``embedding.cutoff`` (Å) to a QM atom —, each whole, at the minimum image realising its
        closest distance. The weights are evaluated on these placed positions, i.e. exactly as
        every consumer of the Frame evaluates them.

        ``info`` must give sampler, iteration, source and seed; other keys go to ``Frame.info``.
        Returns (frame, index) with ``index[k]`` the full-system index of frame atom k.
        """
        pos = np.asarray(positions_ang, float)
        if pos.shape != (len(self.atoms), 3):
            raise ValueError(f"cut_frame: positions shape {pos.shape} != ({len(self.atoms)}, 3) for {self.source}")
        box = self.box_ang
        qm = self.whole_qm_positions(pos)
        n_qm = self.n_qm
        mm_idx = np.zeros(0, int)
        mm_pos = np.zeros((0, 3))
        if len(pos) > n_qm:
            d = minimum_image(pos[n_qm:, None, :] - qm[None, :, :], box)  # (n_mm, n_qm, 3)
            dist2 = np.einsum("aqk,aqk->aq", d, d)
            nearest_qm = np.argmin(dist2, axis=1)
            atom_min2 = dist2[np.arange(len(dist2)), nearest_qm]
            starts = self.molecule_starts - n_qm
            sizes = np.diff(starts)
            mol_of_atom = np.repeat(np.arange(len(sizes)), sizes)
            mol_min2 = np.minimum.reduceat(atom_min2, starts[:-1])
            # each molecule's closest atom: the first atom attaining the molecule minimum
            is_min = atom_min2 == mol_min2[mol_of_atom]
            closest = np.minimum.reduceat(np.where(is_min, np.arange(len(is_min)), len(is_min)), starts[:-1])
            ref = closest[mol_of_atom]  # closest atom of each atom's molecule
            anchor = qm[nearest_qm[ref]] + d[ref, nearest_qm[ref]]
            placed = anchor + minimum_image(pos[n_qm:] - pos[n_qm + ref], box)
            weights = weights_of(np.vstack([qm, placed]), np.arange(len(pos)) < n_qm, self.molecule_index, embedding)
            local = np.flatnonzero(weights[n_qm:] > 0.0)
            mm_pos = placed[local]
            mm_idx = n_qm + local
        index = np.r_[np.arange(n_qm), mm_idx].astype(int)
        symbols = self.atoms.get_chemical_symbols()
        required = {k: info.pop(k) for k in ("sampler", "iteration", "source", "seed") if k in info}
        missing = {"sampler", "iteration", "source", "seed"} - set(required)
        if missing:
            raise ValueError(f"cut_frame: missing frame info {sorted(missing)}")
        frame = make_frame(
            symbols[:n_qm],
            qm,
            [symbols[i] for i in mm_idx],
            mm_pos,
            self.charges_e[mm_idx],
            qm_charge=self.qm_charge,
            multiplicity=self.multiplicity,
            mm_molecule=self.molecule_index[mm_idx],
            embedding=embedding,
            box_cell_ang=np.asarray(self.atoms.cell.array) if box is not None else None,
            extra_info=info or None,
            **required,
        )
        return frame, index

    def to_input_order(self, atoms: Atoms) -> Atoms:
        """A copy of full-system ``atoms`` (mlmm order) permuted back to the structure file's
        atom order, without calculator or constraints (for trajectories next to the input)."""
        if len(atoms) != len(self.atoms) or self.original_index is None:
            raise ValueError(f"to_input_order: need {len(self.atoms)} atoms of a system read from a file ({self.source})")
        out = atoms.copy()
        out.calc = None
        out.set_constraint()
        return out[np.argsort(self.original_index)]

    def water_constraints(self, tolerance: float = 1e-13, tip3p_geometry: bool = False) -> list[FixBondLengths]:
        """ASE constraints keeping every MM water rigid (O–H1, O–H2, H1–H2): at the lengths found
        in the positions when first applied, or at exact TIP3P lengths if ``tip3p_geometry``."""
        if not self.water_molecules:
            return []
        lengths = None
        if tip3p_geometry:
            r_hh = 2.0 * TIP3P_ROH_ANG * np.sin(np.radians(TIP3P_HOH_DEG) / 2.0)
            lengths = np.tile([TIP3P_ROH_ANG, TIP3P_ROH_ANG, r_hh], len(self.water_molecules))
        return [RigidWaterConstraint(np.asarray(self.water_molecules, int), tolerance=tolerance, bondlengths=lengths)]


def _element(name: str) -> str:
    """Normalise an element symbol ('CL' -> 'Cl')."""
    name = name.strip()
    return name[:1].upper() + name[1:].lower()


def guess_elements(universe: Any) -> list[str]:
    """Element symbols (normalised, 'CL' -> 'Cl') of an MDAnalysis Universe's atoms.

    From the structure's element column; where it is missing or blank, MDAnalysis's guess from
    the atom names, which is then stored on the Universe so selections such as ``element H``
    work. System preparation and the trajectory analyses both use this one guess.
    """
    if not hasattr(universe.atoms, "elements") or any(not str(e).strip() for e in universe.atoms.elements):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            universe.guess_TopologyAttrs(to_guess=["elements"], force_guess=["elements"])
    return [_element(str(e)) for e in universe.atoms.elements]


#: Largest distance (Å) at which MDAnalysis's bond guess (0.55 × sum of vdW radii) can bond two
#: atoms of the elements mlmm knows LJ parameters for (Cl–Cl: 0.55 × 2 × 1.75 Å).
_MAX_GUESSED_BOND_ANG: float = 2.0


def cut_bonds(universe: Any, in_qm: np.ndarray, elements: Sequence[str], box_ang: np.ndarray | None) -> list[tuple[int, int]]:
    """Covalent bonds (QM atom index, MM atom index; file order) between the QM region and the rest.

    Bonds come from the structure/topology when it has any (PSF, PRMTOP, PDB CONECT, …); otherwise
    from MDAnalysis's distance-based guess (``DefaultGuesser.guess_bonds``, the VMD rule) on the QM
    atoms and the MM atoms within reach of them, using ``elements`` as atom types.
    """
    import MDAnalysis as mda
    from MDAnalysis.guesser.default_guesser import DefaultGuesser
    from MDAnalysis.lib.distances import capped_distance

    if hasattr(universe.atoms, "bonds") and len(universe.atoms.bonds):
        pairs = universe.atoms.bonds.indices
    else:
        qm = np.flatnonzero(in_qm)
        mm = np.flatnonzero(~in_qm)
        if not len(mm):
            return []
        box = None if box_ang is None else np.r_[box_ang, 90.0, 90.0, 90.0].astype(np.float32)
        pos = universe.atoms.positions
        near, _ = capped_distance(pos[qm], pos[mm], _MAX_GUESSED_BOND_ANG, box=box)
        sub = np.r_[qm, np.unique(mm[near[:, 1]])].astype(int)
        if len(sub) == len(qm):
            return []
        local = mda.Universe.empty(len(sub), trajectory=True)
        local.add_TopologyAttr("types", [elements[i].upper() for i in sub])
        local.atoms.positions = pos[sub]
        found = DefaultGuesser(local, box=box).guess_bonds(local.atoms)
        pairs = sub[np.asarray(found, int).reshape(-1, 2)]
    pairs = np.asarray(pairs, int).reshape(-1, 2)
    crossing = pairs[in_qm[pairs[:, 0]] != in_qm[pairs[:, 1]]]
    ordered = [(int(a), int(b)) if in_qm[a] else (int(b), int(a)) for a, b in crossing]
    return sorted(set(ordered))


def load_system(
    structure: str | Path,
    qm_selection: str,
    *,
    qm_charge: int = 0,
    multiplicity: int = 1,
    topology: str | Path | None = None,
    water_resnames: Sequence[str] = DEFAULT_WATER_RESNAMES,
) -> System:
    """Read a structure (PDB/GRO, optional charge topology) into a :class:`System`.

    MM charges come from the topology when it carries charges, else TIP3P for water residues;
    any other MM residue without charges is an error. The QM selection (MDAnalysis syntax) must
    select atoms, must not leave MM fragments of non-integer charge and must not cut a covalent
    bond (see :func:`cut_bonds`): there are no link atoms.
    """
    import MDAnalysis as mda
    from MDAnalysis.exceptions import SelectionError

    structure = str(structure)
    if not Path(structure).exists():
        raise FileNotFoundError(f"{structure}: structure file not found")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = mda.Universe(str(topology), structure) if topology else mda.Universe(structure)
    elements = guess_elements(u)
    for atom, el in zip(u.atoms, elements):
        if el not in atomic_numbers:
            raise ValueError(f"{structure}: atom {atom.name} of residue {atom.resname} {atom.resid} has unknown element {el!r}")
    topo_charges = np.asarray(u.atoms.charges, float) if topology and hasattr(u.atoms, "charges") else None

    try:
        qm_sel = u.select_atoms(qm_selection)
    except (SelectionError, ValueError) as err:
        raise ValueError(f"{structure}: invalid QM selection {qm_selection!r}: {err}") from err
    if len(qm_sel) == 0:
        raise ValueError(f"{structure}: QM selection {qm_selection!r} selects no atoms")
    qm_idx = np.sort(qm_sel.indices)
    in_qm = np.zeros(len(u.atoms), bool)
    in_qm[qm_idx] = True
    water_set = {w.upper() for w in water_resnames}

    order: list[int] = list(qm_idx)
    charges: list[float] = [0.0] * len(qm_idx)
    mol_index: list[int] = [-1] * len(qm_idx)
    sigma: list[float] = []
    eps: list[float] = []
    waters: list[tuple[int, int, int]] = []
    for i in qm_idx:
        if elements[i] not in ELEMENT_LJ:
            raise ValueError(f"{structure}: no default Lennard-Jones parameters for QM element {elements[i]} (known: {sorted(ELEMENT_LJ)})")
        sigma.append(ELEMENT_LJ[elements[i]][0])
        eps.append(ELEMENT_LJ[elements[i]][1])

    n_mol = 0
    for res in u.residues:
        idx = [i for i in res.atoms.indices if not in_qm[i]]
        if not idx:
            continue
        label = f"residue {res.resname} {res.resid}"
        partial = len(idx) < len(res.atoms)
        is_water = res.resname.upper() in water_set and not partial
        if is_water:
            els = [elements[i] for i in idx]
            if sorted(els) != ["H", "H", "O"]:
                raise ValueError(f"{structure}: water {label} must have exactly atoms O, H, H (got {els})")
            o = idx[els.index("O")]
            idx = [o] + [i for i in idx if i != o]
        if topo_charges is not None:
            q = topo_charges[idx]
        elif is_water:
            q = np.array([TIP3P_CHARGE_O_E, TIP3P_CHARGE_H_E, TIP3P_CHARGE_H_E])
        elif partial and res.resname.upper() in water_set:
            raise ValueError(f"{structure}: QM selection {qm_selection!r} cuts through water {label}")
        else:
            raise ValueError(
                f"{structure}: no MM charges for {label} (water residues {sorted(water_set)} get TIP3P; "
                "give a topology with charges for other MM residues)"
            )
        if abs(q.sum() - round(q.sum())) > 1e-3:
            what = f"QM selection {qm_selection!r} cuts {label}, leaving" if partial else f"{label} has"
            raise ValueError(f"{structure}: {what} an MM fragment of non-integer charge {q.sum():.4f} e")
        start = len(order)
        order.extend(idx)
        charges.extend(q.tolist())
        mol_index.extend([n_mol] * len(idx))
        if is_water:
            waters.append((start, start + 1, start + 2))
            sigma.extend([TIP3P_SIGMA_O_ANG, 0.0, 0.0])
            eps.extend([TIP3P_EPSILON_O_EV, 0.0, 0.0])
        else:
            for i in idx:
                if elements[i] not in ELEMENT_LJ:
                    raise ValueError(f"{structure}: no default Lennard-Jones parameters for element {elements[i]} in {label}")
                sigma.append(ELEMENT_LJ[elements[i]][0])
                eps.append(ELEMENT_LJ[elements[i]][1])
        n_mol += 1

    order_arr = np.asarray(order, int)
    dims = u.dimensions
    pbc = dims is not None and bool(np.all(dims[:3] > 1.0))  # CRYST1 1 1 1 is a "no box" placeholder
    if pbc and not np.allclose(dims[3:], 90.0):
        raise ValueError(f"{structure}: box angles {dims[3:].tolist()} are not 90°; only orthorhombic boxes are supported")
    cut = cut_bonds(u, in_qm, elements, np.asarray(dims[:3], float) if pbc else None)
    if cut:
        names = "; ".join(
            f"{u.atoms[i].name} ({u.atoms[i].resname} {u.atoms[i].resid}, index {i}) – "
            f"{u.atoms[j].name} ({u.atoms[j].resname} {u.atoms[j].resid}, index {j})"
            for i, j in cut
        )
        source = "from the topology" if hasattr(u.atoms, "bonds") and len(u.atoms.bonds) else "guessed from distances"
        raise ValueError(
            f"{structure}: QM selection {qm_selection!r} cuts {len(cut)} covalent bond(s) to MM atoms ({source}; "
            f"QM atom first, 0-based atom indices in file order): {names}. mlmm has no link atoms: "
            "the QM region must consist of whole molecules"
        )
    atoms = Atoms(
        symbols=[elements[i] for i in order_arr],
        positions=u.atoms.positions[order_arr].astype(float),
        cell=np.diag(np.round(dims[:3].astype(float), 4)) if pbc else None,  # float32 -> file precision
        pbc=pbc,
    )
    return System(
        atoms=atoms,
        n_qm=len(qm_idx),
        charges_e=np.asarray(charges, float),
        molecule_index=np.asarray(mol_index, int),
        lj_sigma_ang=np.asarray(sigma, float),
        lj_epsilon_ev=np.asarray(eps, float),
        qm_charge=int(qm_charge),
        multiplicity=int(multiplicity),
        water_molecules=waters,
        source=structure,
        original_index=order_arr,
        atom_names=np.asarray(u.atoms.names)[order_arr],
        resnames=np.asarray(u.atoms.resnames)[order_arr],
        resids=np.asarray(u.atoms.resids)[order_arr],
    )
