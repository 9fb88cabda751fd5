"""The full QM/MM system: structure + force field + QM selection, and the cut into Frames.

``load_system`` builds the force field's OpenMM System of the whole structure
(:func:`mlmm.mm.load_mm_model`: PDB + ForceField XML, Amber prmtop, CHARMM psf or GROMACS top),
takes elements, masses and partial charges from it, selects the QM region with an MDAnalysis
selection on its topology, and orders the atoms QM first, then every MM molecule (residue)
contiguously. That mlmm order is the one of Frames, of ``System.atoms`` and of PLUMED's atom
numbers; the OpenMM System stays in the structure file's order, and ``original_index`` maps
between the two (:meth:`System.to_file_order`, :meth:`System.from_file_order`).
``System.cut_frame`` turns full-system positions into the Frame contract of :mod:`mlmm.frames`:
the QM region made whole, plus every MM molecule the embedding (:mod:`mlmm.embedding`) gives a
weight > 0, placed at its minimum image relative to the QM region. A QM selection that cuts
covalent bonds (``system.link_atoms``) gets a hydrogen link atom per cut bond and the boundary
charges of :mod:`mlmm.boundary`; the link atoms exist only in Frames (after the QM atoms), and
:meth:`System.full_forces` hands their forces back to the bond's two atoms.

Periodic boxes must be orthorhombic here (the Frame cut's minimum image is exact for distances
below half the shortest box edge); the MM engine itself would take triclinic boxes.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from ase import Atoms

import openmm
import openmm.unit as unit

from mlmm.boundary import LinkBond, boundary_charges, describe, find_link_bonds, link_positions, project_link_forces
from mlmm.embedding import weights_of
from mlmm.frames import make_frame
from mlmm.mm import MMModel, load_mm_model
from mlmm.settings import EmbeddingSettings


def minimum_image(vectors_ang: np.ndarray, box_ang: np.ndarray | None) -> np.ndarray:
    """Minimum-image copies of difference vectors (…, 3) in an orthorhombic box (None: no PBC)."""
    if box_ang is None:
        return vectors_ang
    return vectors_ang - box_ang * np.round(vectors_ang / box_ang)


@dataclass
class System:
    """Full QM/MM system in mlmm order: QM atoms first, then MM molecules contiguously.

    Per-atom arrays follow ``atoms`` (whose masses are the force field's); ``charges_e`` are the
    force field's partial charges of the MM atoms and 0 on QM atoms (their electrostatics belong
    to the QM term); ``molecule_index`` is -1 on QM atoms and numbers the MM molecules (residues)
    0..M-1. ``mm`` is the force field's OpenMM System in the structure file's order (its
    constraints keep water rigid); ``original_index[k]`` is the file index of atom k. ``links``:
    the cut covalent bonds (mlmm indices), each with its link atom (:mod:`mlmm.boundary`);
    ``charges_e`` then carry the boundary charges, which the MM part uses too
    (:meth:`mm_charges_file_order`).
    """

    atoms: Atoms
    n_qm: int
    charges_e: np.ndarray
    molecule_index: np.ndarray
    qm_charge: int
    multiplicity: int
    mm: MMModel
    original_index: np.ndarray
    source: str = ""  #: structure file the system was read from
    atom_names: np.ndarray | None = None
    resnames: np.ndarray | None = None
    resids: np.ndarray | None = None
    links: tuple[LinkBond, ...] = ()

    @property
    def n_link(self) -> int:
        """Number of link atoms (cut covalent bonds)."""
        return len(self.links)

    @property
    def link_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The cut bonds as arrays: Q1 and M1 (mlmm indices, int (L,)) and the ratios g (L,)."""
        return (np.array([link.qm for link in self.links], int), np.array([link.mm for link in self.links], int),
                np.array([link.ratio for link in self.links], float))

    def mm_charges_file_order(self) -> np.ndarray:
        """The MM charges (e) in the structure file's order: the force field's, with the boundary
        charges of cut bonds (0 on QM atoms): what the QM region sees and what the MM part uses."""
        return self.to_file_order(self.charges_e)

    def qm_cluster(self, positions_ang: np.ndarray) -> tuple[list[str], np.ndarray]:
        """Symbols and positions (Å) of the QM region as the QM engines see it: the QM atoms made
        whole, then one hydrogen link atom per cut bond."""
        qm = self.whole_qm_positions(positions_ang)
        symbols = self.atoms.get_chemical_symbols()[: self.n_qm]
        if not self.links:
            return symbols, qm
        q1, m1, ratios = self.link_arrays
        m1_pos = qm[q1] + minimum_image(np.asarray(positions_ang, float)[m1] - positions_ang[q1], self.box_ang)
        return symbols + ["H"] * len(q1), np.vstack([qm, link_positions(qm[q1], m1_pos, ratios)])

    def full_forces(self, frame: Atoms, frame_forces: np.ndarray, index: np.ndarray) -> np.ndarray:
        """Forces (eV/Å) on every atom of the full system from forces on a Frame's atoms (``index``
        from :meth:`cut_frame`): each Frame atom's force on its atom, a link atom's handed to Q1 and
        M1 by the chain rule (:func:`mlmm.boundary.project_link_forces`)."""
        from mlmm.frames import link_atoms

        frame_forces = np.asarray(frame_forces, float)
        out = np.zeros((len(self.atoms), 3))
        real = index >= 0
        out[index[real]] = frame_forces[real]
        rows, ratios = link_atoms(frame)
        if len(rows):
            out = project_link_forces(out, frame_forces[rows[:, 0]], index[rows[:, 1]], index[rows[:, 2]], ratios)
        return out

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

    def with_box(self, box_vectors_ang: np.ndarray) -> "System":
        """The same system in another (orthorhombic) box, e.g. the current one of an NPT run, so its
        Frames are cut with that box's minimum image (the force field stays the one built)."""
        atoms = self.atoms.copy()
        atoms.cell = np.asarray(box_vectors_ang, float)
        return replace(self, atoms=atoms)

    def to_file_order(self, values: np.ndarray) -> np.ndarray:
        """Per-atom ``values`` (mlmm order) in the structure file's (OpenMM's) order."""
        out = np.empty_like(values)
        out[self.original_index] = values
        return out

    def from_file_order(self, values: np.ndarray) -> np.ndarray:
        """Per-atom ``values`` in the structure file's order, in mlmm order."""
        return values[self.original_index]

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

    def placed_mm(self, positions_ang: np.ndarray, qm_whole_ang: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every MM atom placed with its molecule, whole, at the minimum image realising the
        molecule's closest distance to the (whole) QM positions ``qm_whole_ang``, and the
        closest distance (Å) of each atom's molecule, as :meth:`cut_frame` places them: ((n_mm, 3), (n_mm,))."""
        pos, qm, box, n_qm = positions_ang, qm_whole_ang, self.box_ang, self.n_qm
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
        return anchor + minimum_image(pos[n_qm:] - pos[n_qm + ref], box), np.sqrt(mol_min2[mol_of_atom])

    def cut_frame(self, positions_ang: np.ndarray, embedding: EmbeddingSettings, **info: Any) -> tuple[Atoms, np.ndarray]:
        """Frame of the QM region (made whole) plus every MM molecule whose embedding weight
        (:mod:`mlmm.embedding`, with ``embedding``) is > 0 — those with an atom closer than
        ``embedding.cutoff`` (Å) to a QM atom —, each whole, at the minimum image realising its
        closest distance. The weights are evaluated on these placed positions, i.e. exactly as
        every consumer of the Frame evaluates them.

        Link atoms (one per cut bond) follow the QM atoms; they count as QM atoms for the weights.

        ``info`` must give sampler, iteration, source and seed; other keys go to ``Frame.info``.
        Returns (frame, index) with ``index[k]`` the full-system index of frame atom k (-1 on link
        atoms; :meth:`full_forces` maps Frame forces back).
        """
        pos = np.asarray(positions_ang, float)
        if pos.shape != (len(self.atoms), 3):
            raise ValueError(f"cut_frame: positions shape {pos.shape} != ({len(self.atoms)}, 3) for {self.source}")
        box = self.box_ang
        qm = self.whole_qm_positions(pos)
        n_qm, n_link = self.n_qm, self.n_link
        mm_idx = np.zeros(0, int)
        mm_pos = np.zeros((0, 3))
        link_pos = np.zeros((0, 3))
        if len(pos) > n_qm:
            placed, _ = self.placed_mm(pos, qm)
            if n_link:
                q1, m1, ratios = self.link_arrays
                link_pos = link_positions(qm[q1], placed[m1 - n_qm], ratios)
            n_inner = n_qm + n_link
            weights = weights_of(np.vstack([qm, link_pos, placed]), np.arange(n_inner + len(placed)) < n_inner,
                                 np.r_[-np.ones(n_inner, int), self.molecule_index[n_qm:]], embedding)
            local = np.flatnonzero(weights[n_inner:] > 0.0)
            mm_pos = placed[local]
            mm_idx = n_qm + local
        index = np.r_[np.arange(n_qm), -np.ones(n_link, int), mm_idx].astype(int)
        links = None
        if n_link:
            slot = {int(a): n_qm + n_link + k for k, a in enumerate(mm_idx)}
            missing = [link.mm for link in self.links if link.mm not in slot]
            if missing:  # M1 is bonded to a QM atom: only an embedding cutoff below a bond length misses it
                raise ValueError(f"cut_frame: the embedding (cutoff {embedding.cutoff} Å) leaves out the boundary MM atoms "
                                 f"{missing} of the cut bonds")
            links = (np.array([[n_qm + k, link.qm, slot[link.mm]] for k, link in enumerate(self.links)], int),
                     self.link_arrays[2])
        symbols = self.atoms.get_chemical_symbols()
        required = {k: info.pop(k) for k in ("sampler", "iteration", "source", "seed") if k in info}
        missing = {"sampler", "iteration", "source", "seed"} - set(required)
        if missing:
            raise ValueError(f"cut_frame: missing frame info {sorted(missing)}")
        frame = make_frame(
            symbols[:n_qm] + ["H"] * n_link,
            np.vstack([qm, link_pos]),
            [symbols[i] for i in mm_idx],
            mm_pos,
            self.charges_e[mm_idx],
            qm_charge=self.qm_charge,
            multiplicity=self.multiplicity,
            mm_molecule=self.molecule_index[mm_idx],
            embedding=embedding,
            box_cell_ang=np.asarray(self.atoms.cell.array) if box is not None else None,
            extra_info=info or None,
            links=links,
            **required,
        )
        return frame, index


def _element(name: str) -> str:
    """Normalise an element symbol ('CL' -> 'Cl')."""
    name = name.strip()
    return name[:1].upper() + name[1:].lower()


def guess_elements(universe: Any) -> list[str]:
    """Element symbols (normalised, 'CL' -> 'Cl') of an MDAnalysis Universe's atoms.

    From the structure's element column; where it is missing or blank, MDAnalysis's guess from
    the atom names, which is then stored on the Universe so selections such as ``element H``
    work (the trajectory analyses; a System takes its elements from the force field).
    """
    if not hasattr(universe.atoms, "elements") or any(not str(e).strip() for e in universe.atoms.elements):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            universe.guess_TopologyAttrs(to_guess=["elements"], force_guess=["elements"])
    return [_element(str(e)) for e in universe.atoms.elements]


def cut_bonds(universe: Any, in_qm: np.ndarray) -> list[tuple[int, int]]:
    """Covalent bonds (QM atom index, MM atom index; file order) between the QM region and the
    rest, from the force field's topology (the bonds its terms were built on)."""
    if not len(universe.atoms.bonds):
        return []
    pairs = np.asarray(universe.atoms.bonds.indices, int).reshape(-1, 2)
    crossing = pairs[in_qm[pairs[:, 0]] != in_qm[pairs[:, 1]]]
    ordered = [(int(a), int(b)) if in_qm[a] else (int(b), int(a)) for a, b in crossing]
    return sorted(set(ordered))


def load_system(
    structure: str | Path,
    qm_selection: str,
    *,
    qm_charge: int = 0,
    multiplicity: int = 1,
    force_field: Sequence[str] = (),
    topology: str | Path | None = None,
    parameters: Sequence[str] = (),
    gromacs_include: str | None = None,
    nonbonded_method: str = "auto",
    nonbonded_cutoff_ang: float = 9.0,
    dispersion_correction: bool = True,
    ewald_tolerance: float = 1e-4,
    link_atoms: bool = False,
) -> System:
    """Read ``structure`` with its force field (see :func:`mlmm.mm.load_mm_model` for the inputs)
    into a :class:`System`.

    The QM selection (MDAnalysis syntax) must select atoms whose force-field charges add up to
    the integer ``qm_charge`` and must not leave MM fragments of non-integer charge. A selection
    that cuts covalent bonds of the topology is an error listing them, unless ``link_atoms``: then
    each cut bond must join two sp3 carbons and gets a hydrogen link atom, and the boundary charges
    of :mod:`mlmm.boundary` replace the force field's next to it (the QM atoms' force-field charge
    must then lie within :data:`mlmm.boundary.CHARGE_TOLERANCE_E` of ``qm_charge``).
    """
    import MDAnalysis as mda
    from MDAnalysis.coordinates.memory import MemoryReader
    from MDAnalysis.exceptions import SelectionError
    from MDAnalysis.lib.mdamath import triclinic_box

    structure = str(structure)
    model = load_mm_model(structure, force_field=force_field, topology=None if topology is None else str(topology),
                          parameters=parameters, gromacs_include=gromacs_include,
                          nonbonded_method=nonbonded_method, cutoff_ang=nonbonded_cutoff_ang,
                          dispersion_correction=dispersion_correction, ewald_tolerance=ewald_tolerance)
    top, box = model.topology, model.box_vectors_ang
    for atom in top.atoms():
        if atom.element is None:
            raise ValueError(f"{model.source}: particle {atom.name} of residue {atom.residue.name} {atom.residue.id} "
                             "has no element (a virtual site or extra point); virtual sites are not supported")
    if box is not None and not np.allclose(box, np.diag(np.diag(box))):
        raise ValueError(f"{structure}: box vectors {np.round(box, 4).tolist()} are not orthorhombic; "
                         "the Frame cut supports only orthorhombic boxes")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = mda.Universe(top)
    u.load_new(model.positions_ang[None].astype(np.float32), format=MemoryReader,
               dimensions=None if box is None else triclinic_box(*box))
    elements = [atom.element.symbol for atom in top.atoms()]
    nonbonded = next(f for f in model.system.getForces() if isinstance(f, openmm.NonbondedForce))
    ff_charges = np.array([nonbonded.getParticleParameters(i)[0].value_in_unit(unit.elementary_charge)
                           for i in range(model.system.getNumParticles())])
    masses = np.array([model.system.getParticleMass(i).value_in_unit(unit.dalton)
                       for i in range(model.system.getNumParticles())])

    try:
        qm_sel = u.select_atoms(qm_selection)
    except (SelectionError, ValueError) as err:
        raise ValueError(f"{structure}: invalid QM selection {qm_selection!r}: {err}") from err
    if len(qm_sel) == 0:
        raise ValueError(f"{structure}: QM selection {qm_selection!r} selects no atoms")
    qm_idx = np.sort(qm_sel.indices)
    in_qm = np.zeros(len(u.atoms), bool)
    in_qm[qm_idx] = True
    cut = cut_bonds(u, in_qm)
    label = lambda i: describe(i, u.atoms.names, u.atoms.resnames, u.atoms.resids)  # noqa: E731
    if cut and not link_atoms:
        names = "; ".join(f"{label(i)} – {label(j)}" for i, j in cut)
        raise ValueError(
            f"{structure}: QM selection {qm_selection!r} cuts {len(cut)} covalent bond(s) of the topology to MM atoms "
            f"(QM atom first, 0-based atom indices in file order): {names}. Select whole molecules, or set "
            "system.link_atoms: true to cap single bonds between sp3 carbons with hydrogen link atoms"
        )
    links_file = []
    if cut:
        bonds = [(int(a), int(b)) for a, b in np.asarray(u.atoms.bonds.indices, int).reshape(-1, 2)]
        links_file = find_link_bonds(cut, bonds, elements, in_qm, _bond_lengths_ang(model.system), label,
                                     f"{structure}: QM selection {qm_selection!r}")
        ff_charges = boundary_charges(ff_charges, links_file, in_qm, np.asarray(u.atoms.resindices), qm_charge,
                                      f"{model.source}: QM selection {qm_selection!r}")
    else:  # whole molecules (with cut bonds boundary_charges checked the charge against qm_charge)
        q_qm = float(ff_charges[qm_idx].sum())
        if abs(q_qm - round(q_qm)) > 1e-3:
            raise ValueError(f"{model.source}: the force-field charges of QM selection {qm_selection!r} add up to "
                             f"{q_qm:.4f} e, not an integer (it must consist of whole molecules)")
        if round(q_qm) != int(qm_charge):
            raise ValueError(f"{model.source}: QM selection {qm_selection!r} has force-field charge {round(q_qm)} e, "
                             f"but system.qm_charge is {qm_charge}")

    order: list[int] = list(qm_idx)
    mol_index: list[int] = [-1] * len(qm_idx)
    n_mol = 0
    for res in u.residues:
        idx = [int(i) for i in res.atoms.indices if not in_qm[i]]
        if not idx:
            continue
        q = ff_charges[idx].sum()
        if abs(q - round(q)) > 1e-3:
            what = "the MM atoms of residue" if len(idx) < len(res.atoms) else "residue"
            raise ValueError(f"{model.source}: {what} {res.resname} {res.resid} carry a non-integer charge {q:.4f} e; "
                             "Frames embed whole residues, so each must have an integer charge")
        order.extend(idx)
        mol_index.extend([n_mol] * len(idx))
        n_mol += 1

    order_arr = np.asarray(order, int)
    position = np.empty(len(order_arr), int)
    position[order_arr] = np.arange(len(order_arr))  # file index -> mlmm index
    links = tuple(LinkBond(qm=int(position[link.qm]), mm=int(position[link.mm]), ratio=link.ratio,
                           neighbours=tuple(int(position[j]) for j in link.neighbours)) for link in links_file)
    atoms = Atoms(
        symbols=[elements[i] for i in order_arr],
        positions=model.positions_ang[order_arr],
        cell=np.round(box, 6) if box is not None else None,
        pbc=box is not None,
    )
    atoms.set_masses(masses[order_arr])
    charges = ff_charges[order_arr]
    charges[: len(qm_idx)] = 0.0
    return System(
        atoms=atoms,
        n_qm=len(qm_idx),
        charges_e=charges,
        molecule_index=np.asarray(mol_index, int),
        qm_charge=int(qm_charge),
        multiplicity=int(multiplicity),
        mm=model,
        original_index=order_arr,
        source=structure,
        atom_names=np.asarray(u.atoms.names)[order_arr],
        resnames=np.asarray(u.atoms.resnames)[order_arr],
        resids=np.asarray(u.atoms.resids)[order_arr],
        links=links,
    )


def _bond_lengths_ang(system: openmm.System) -> dict[tuple[int, int], float]:
    """Equilibrium length (Å) of every HarmonicBondForce bond, by sorted (file-order) atom pair."""
    lengths: dict[tuple[int, int], float] = {}
    for force in system.getForces():
        if isinstance(force, openmm.HarmonicBondForce):
            for k in range(force.getNumBonds()):
                a, b, r0, _ = force.getBondParameters(k)
                lengths[(min(a, b), max(a, b))] = r0.value_in_unit(unit.angstrom)
    return lengths


def solute_with_nearest_waters(source: str | Path, resname: str, n_waters: int, out_path: str | Path,
                               force_field: Sequence[str]) -> System:
    """The ``resname`` solute of the PDB ``source`` plus its ``n_waters`` nearest waters (residue
    ``HOH``, by O distance in Å, in that order), written as a non-periodic PDB at ``out_path``
    (CONECT records for the solute) and loaded with ``force_field`` as a System with the solute as
    QM region: the cluster of H-bond scans, gas-phase checks and small tests."""
    import openmm.app as app

    pdb = app.PDBFile(str(source))
    pos = np.asarray(pdb.getPositions(asNumpy=True).value_in_unit(unit.angstrom))
    residues = list(pdb.topology.residues())
    solute = [r for r in residues if r.name == resname]
    if not solute:
        raise ValueError(f"{source}: no residue named {resname!r}")
    solute_pos = pos[[a.index for r in solute for a in r.atoms()]]
    waters = [r for r in residues if r.name == "HOH"]
    o = np.array([next(a.index for a in r.atoms() if a.element.symbol == "O") for r in waters])
    d = np.linalg.norm(pos[o][:, None] - solute_pos[None], axis=2).min(axis=1)
    keep = solute + [waters[k] for k in np.argsort(d)[:n_waters]]
    top = app.Topology()
    chain = top.addChain()
    new = {}
    for res in keep:
        r = top.addResidue(res.name, chain, res.id)
        for atom in res.atoms():
            new[atom.index] = top.addAtom(atom.name, atom.element, r)
    for a, b in pdb.topology.bonds():
        if a.index in new and b.index in new:
            top.addBond(new[a.index], new[b.index])
    with open(out_path, "w") as fh:
        app.PDBFile.writeFile(top, pos[list(new)] * unit.angstrom, fh, keepIds=True)
    return load_system(out_path, f"resname {resname}", force_field=force_field)
