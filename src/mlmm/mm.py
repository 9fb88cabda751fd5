"""Classical (MM) part of the QM/MM potential, through OpenMM and the user's force field.

:func:`load_mm_model` builds the OpenMM ``System`` of the whole structure from one of four inputs
(:func:`input_kind`): a PDB + OpenMM ForceField XML files, an Amber prmtop, a CHARMM psf +
parameter files, or a GROMACS top; charges, Lennard-Jones, masses and constraints (rigid water)
all come from there. Its atoms are in the structure file's order; :class:`mlmm.system.System`
keeps the QM atoms first and maps between the two orders.

:func:`partition` turns that System into the MM part of a QM/MM potential: the QM atoms' charges
are zeroed (their electrostatics belong to the QM term) or replaced by given fixed charges
(mechanical embedding), MM charges may be replaced (the boundary charges of cut covalent bonds,
:mod:`mlmm.boundary`), QM–QM nonbonded pairs are excluded, bonded terms and constraints entirely
inside the QM region are removed (terms with at least one MM atom stay), and QM–MM Lennard-Jones
stays as the force field defines it, its 1-2/1-3 exclusions and 1-4 scaling included.
MM–MM electrostatics are PME in periodic boxes (triclinic allowed), reaction-field cutoff or no
cutoff otherwise. :class:`OpenMMTerm` evaluates the partitioned System in an OpenMM Context on the
CPU platform (``energy_forces(positions_ang)``, the :class:`mlmm.potentials.MMTerm` protocol).
"""

from __future__ import annotations

import copy
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import openmm
import openmm.app as app
import openmm.unit as unit

from mlmm.units import KJ_PER_MOL_NM_TO_EV_PER_ANGSTROM, KJ_PER_MOL_TO_EV, NM_TO_ANGSTROM

if TYPE_CHECKING:
    from mlmm.system import System

#: Topology file types by extension (``system.topology``); without one: PDB + ForceField XML.
TOPOLOGY_KINDS: dict[str, str] = {".prmtop": "amber", ".parm7": "amber", ".psf": "charmm", ".top": "gromacs"}
#: Structure files a PDB + ForceField XML input can read (OpenMM needs residues and bonds).
FORCE_FIELD_STRUCTURES = (".pdb", ".ent", ".cif", ".pdbx", ".mmcif")
NONBONDED_METHODS = ("auto", "pme", "cutoff", "none")
#: Where OpenMM looks for GROMACS #include files unless ``system.gromacs_include`` says otherwise.
DEFAULT_GROMACS_INCLUDE = "/usr/local/gromacs/share/gromacs/top"

#: Forces whose terms are lists of particles (bonded terms): terms inside the QM region go.
_BONDED_FORCES = (
    openmm.HarmonicBondForce, openmm.HarmonicAngleForce, openmm.PeriodicTorsionForce, openmm.RBTorsionForce,
    openmm.CMAPTorsionForce, openmm.CustomBondForce, openmm.CustomAngleForce, openmm.CustomTorsionForce,
    openmm.CustomCompoundBondForce,
)
#: Serialised particle attributes of a bonded term (p1, p2, … ; CMAP: a1…a4, b1…b4).
_PARTICLE_ATTRIBUTE = re.compile(r"^[pab]\d+$")


@dataclass
class MMModel:
    """The force field's OpenMM System of the whole structure, in the structure file's atom order."""

    topology: app.Topology
    system: openmm.System
    positions_ang: np.ndarray  #: (N, 3) Å
    box_vectors_ang: np.ndarray | None  #: (3, 3) Å, rows a, b, c; None: not periodic
    nonbonded_method: str  #: pme | cutoff | none (``auto`` resolved)
    cutoff_ang: float
    source: str  #: the input files, for messages


def _files(paths: Sequence[str | os.PathLike]) -> list[str]:
    return [str(p) for p in paths]


def input_kind(topology: str | None, force_field: Sequence[str]) -> str:
    """Which force-field input the ``system`` settings give: ``force_field`` (PDB + XML), ``amber``,
    ``charmm`` or ``gromacs`` (one error listing them otherwise)."""
    supported = ("PDB/PDBx + system.force_field (OpenMM ForceField XML files), or system.topology: "
                 + ", ".join(f"{ext} ({kind})" for ext, kind in TOPOLOGY_KINDS.items()))
    if topology and force_field:
        raise ValueError(f"system: give either topology ({topology}) or force_field ({list(force_field)}), not both")
    if not topology:
        if not force_field:
            raise ValueError(f"system: no force field; supported inputs: {supported}")
        return "force_field"
    kind = TOPOLOGY_KINDS.get(Path(topology).suffix.lower())
    if kind is None:
        raise ValueError(f"system.topology {topology}: unsupported file type {Path(topology).suffix!r}; supported inputs: {supported}")
    return kind


def _box_or_none(vectors_ang: np.ndarray | None) -> np.ndarray | None:
    """Box vectors (Å), or None for no box or a placeholder box (MDAnalysis writes CRYST1 1 1 1)."""
    if vectors_ang is None:
        return None
    vectors_ang = np.asarray(vectors_ang, float)
    return vectors_ang if np.all(np.linalg.norm(vectors_ang, axis=1) > 1.0) else None


def _vectors_ang(box) -> np.ndarray | None:
    """OpenMM box vectors (Quantity) as a (3, 3) array in Å."""
    if box is None:
        return None
    return np.array([v.value_in_unit(unit.angstrom) for v in box], float)


def _read_coordinates(structure: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Positions (Å) and box vectors (Å, or None) of the first frame of a coordinate file, read with
    MDAnalysis' coordinate readers (inpcrd/rst7, gro, crd, pdb, … any format it reads)."""
    from MDAnalysis.coordinates.core import reader
    from MDAnalysis.lib.mdamath import triclinic_vectors

    try:
        frames = reader(structure)
    except (ValueError, TypeError, OSError) as err:
        raise ValueError(f"{structure}: cannot read coordinates ({err})") from err
    ts = frames.ts
    dims = ts.dimensions
    box = None if dims is None or not np.all(dims[:3] > 1.0) else triclinic_vectors(dims).astype(float)
    return np.asarray(ts.positions, float), box


def _nonbonded(method: str, periodic: bool, where: str):
    """OpenMM nonbonded method for ``system.nonbonded.method`` (``auto``: PME if periodic, else none)."""
    if method == "auto":
        method = "pme" if periodic else "none"
    if method == "pme" and not periodic:
        raise ValueError(f"{where}: system.nonbonded.method pme needs a periodic box (the structure has none)")
    if method == "none" and periodic:
        raise ValueError(f"{where}: system.nonbonded.method none is for clusters; the structure is periodic (use pme or cutoff)")
    kind = {"pme": app.PME, "cutoff": app.CutoffPeriodic if periodic else app.CutoffNonPeriodic, "none": app.NoCutoff}
    return method, kind[method]


def load_mm_model(
    structure: str,
    *,
    force_field: Sequence[str] = (),
    topology: str | None = None,
    parameters: Sequence[str] = (),
    gromacs_include: str | None = None,
    nonbonded_method: str = "auto",
    cutoff_ang: float = 9.0,
    dispersion_correction: bool = True,
    ewald_tolerance: float = 1e-4,
) -> MMModel:
    """The OpenMM System of ``structure`` from the force field (see module docstring).

    Constraints: rigid water only (the force field's water geometry); everything else flexible.
    ``dispersion_correction``: the long-range Lennard-Jones correction of periodic cutoffs, set the
    same way for every input kind (OpenMM's readers differ: CHARMM's leaves it off).
    ``ewald_tolerance``: PME's relative force error (OpenMM's ``ewaldErrorTolerance``).
    Errors name the file and what is missing (OpenMM's template/parameter messages included).
    """
    kind = input_kind(topology, force_field)
    structure = str(structure)
    if not Path(structure).is_file():
        raise FileNotFoundError(f"system.structure {structure}: file not found")
    for path in ([topology] if topology else []) + list(parameters):
        if not Path(path).is_file():
            raise FileNotFoundError(f"system: file {path} not found")
    if nonbonded_method not in NONBONDED_METHODS:
        raise ValueError(f"system.nonbonded.method {nonbonded_method!r}: expected one of {NONBONDED_METHODS}")
    if kind == "force_field":
        source = f"{structure} with force field {_files(force_field)}"
        suffix = Path(structure).suffix.lower()
        if suffix not in FORCE_FIELD_STRUCTURES:
            raise ValueError(f"system.structure {structure}: with system.force_field the structure must be PDB or PDBx/mmCIF "
                             f"({', '.join(FORCE_FIELD_STRUCTURES)}), which carry the residues and bonds the templates match")
        pdb = (app.PDBxFile if suffix in (".cif", ".pdbx", ".mmcif") else app.PDBFile)(structure)
        top = pdb.topology
        positions = np.array(pdb.getPositions(asNumpy=True).value_in_unit(unit.angstrom), float)
        box = _box_or_none(_vectors_ang(top.getPeriodicBoxVectors()))
        try:
            ff = app.ForceField(*_files(force_field))
        except (ValueError, OSError, ET.ParseError) as err:
            raise ValueError(f"system.force_field {_files(force_field)}: cannot load ({err}); give OpenMM's bundled files by "
                             "name (e.g. amber14-all.xml, amber14/tip3p.xml) and your own by path") from err
        create = lambda **options: ff.createSystem(top, **options)  # noqa: E731
    else:
        source = f"{structure} with {kind} topology {topology}" + (f" and parameters {_files(parameters)}" if parameters else "")
        positions, box = _read_coordinates(structure)
        include = gromacs_include or DEFAULT_GROMACS_INCLUDE
        try:
            if kind == "amber":
                prm = app.AmberPrmtopFile(topology)
                box = box if box is not None else _box_or_none(_vectors_ang(prm.topology.getPeriodicBoxVectors()))
                create = prm.createSystem
            elif kind == "charmm":
                if not parameters:
                    raise ValueError("a CHARMM psf needs system.parameters (.prm/.rtf/.str files)")
                prm = app.CharmmPsfFile(topology)
                if box is not None:
                    from MDAnalysis.lib.mdamath import triclinic_box

                    a, b, c, alpha, beta, gamma = (float(x) for x in triclinic_box(*box))
                    prm.setBox(a * unit.angstrom, b * unit.angstrom, c * unit.angstrom,
                               alpha * unit.degree, beta * unit.degree, gamma * unit.degree)
                params = app.CharmmParameterSet(*_files(parameters))
                create = lambda **options: prm.createSystem(params, **options)  # noqa: E731
            else:
                prm = app.GromacsTopFile(topology, periodicBoxVectors=None if box is None else box * unit.angstrom,
                                         includeDir=include)
                create = prm.createSystem
        except Exception as err:  # the readers raise ValueError, OSError and ParmEd's own types
            hint = f" (system.gromacs_include: {include})" if kind == "gromacs" else ""
            raise ValueError(f"{source}: cannot read the topology: {type(err).__name__}: {err}{hint}") from err
        top = prm.topology
        if top.getNumAtoms() != len(positions):
            raise ValueError(f"system.structure {structure}: {len(positions)} atoms, but system.topology {topology} has {top.getNumAtoms()}")
    method, omm_method = _nonbonded(nonbonded_method, box is not None, source)
    if method != "none" and box is not None:
        width = float(min(box[0, 0], box[1, 1], box[2, 2]))
        if cutoff_ang > 0.5 * width:
            raise ValueError(f"{source}: system.nonbonded.cutoff {cutoff_ang} Å exceeds half the box width ({0.5 * width:.2f} Å)")
    top.setPeriodicBoxVectors(None if box is None else box * unit.angstrom)
    options = dict(nonbondedMethod=omm_method, nonbondedCutoff=cutoff_ang * unit.angstrom, constraints=None, rigidWater=True,
                   ewaldErrorTolerance=ewald_tolerance)
    if kind != "gromacs":  # no harmonic terms on constrained water geometry (GROMACS' reader has none anyway)
        options["flexibleConstraints"] = False
    try:
        system = create(**options)
    except Exception as err:  # OpenMM/ParmEd raise ValueError, KeyError and their own types for missing parameters
        raise ValueError(f"{source}: the force field does not describe the structure: {type(err).__name__}: {err}") from err
    if box is not None:
        system.setDefaultPeriodicBoxVectors(*(box * unit.angstrom))
    for force in system.getForces():
        if isinstance(force, openmm.NonbondedForce):
            force.setUseDispersionCorrection(dispersion_correction)
        elif isinstance(force, openmm.CustomNonbondedForce):
            force.setUseLongRangeCorrection(dispersion_correction)
    return MMModel(topology=top, system=system, positions_ang=positions, box_vectors_ang=box,
                   nonbonded_method=method, cutoff_ang=float(cutoff_ang), source=source)


def _without_qm_terms(force: openmm.Force, qm: set[int]) -> openmm.Force:
    """A copy of a bonded force without the terms whose particles are all QM atoms."""
    root = ET.fromstring(openmm.XmlSerializer.serialize(force))
    for container in root:
        for term in list(container):
            particles = [int(v) for k, v in term.attrib.items() if _PARTICLE_ATTRIBUTE.match(k)]
            if particles and all(p in qm for p in particles):
                container.remove(term)
    return openmm.XmlSerializer.deserialize(ET.tostring(root, encoding="unicode"))


def _coulomb14_scale(force: openmm.NonbondedForce) -> float:
    """The force field's 1-4 Coulomb scale: median chargeProd / (q_a q_b) over its exceptions with
    charge (Amber 1/1.2, CHARMM 1, GROMACS fudgeQQ); 1 if it has none."""
    ratios = []
    for e in range(force.getNumExceptions()):
        a, b, qq, _, _ = force.getExceptionParameters(e)
        qa, qb = (force.getParticleParameters(i)[0].value_in_unit(unit.elementary_charge) for i in (a, b))
        qq = qq.value_in_unit(unit.elementary_charge**2)
        if qq != 0.0 and abs(qa * qb) > 1e-8:
            ratios.append(qq / (qa * qb))
    return float(np.median(ratios)) if ratios else 1.0


def partition(system: openmm.System, qm_atoms: Sequence[int], qm_charges_e: Sequence[float] | None = None,
              mm_charges_e: Sequence[float] | None = None) -> openmm.System:
    """The MM part of the QM/MM potential (a new System; see module docstring).

    ``qm_atoms``: indices of the QM atoms in ``system``; ``qm_charges_e``: fixed charges (e) they
    keep in the NonbondedForce (mechanical embedding), in that order; None: charges 0.
    ``mm_charges_e``: charges (e) of all particles in ``system``'s order whose MM entries replace the
    force field's (the boundary charges; QM entries are ignored); None: the force field's. The
    1-4 exceptions of every atom whose charge changes are rescaled with the force field's 1-4
    scale; its exclusions stay excluded.
    """
    qm = [int(i) for i in qm_atoms]
    qm_set = set(qm)
    charges = np.zeros(len(qm)) if qm_charges_e is None else np.asarray(qm_charges_e, float)
    if charges.shape != (len(qm),):
        raise ValueError(f"partition: {len(qm)} QM atoms but qm_charges_e has shape {charges.shape}")
    if mm_charges_e is not None and np.shape(mm_charges_e) != (system.getNumParticles(),):
        raise ValueError(f"partition: mm_charges_e has shape {np.shape(mm_charges_e)}, expected ({system.getNumParticles()},)")
    for i in range(system.getNumParticles()):
        if system.isVirtualSite(i):
            site = system.getVirtualSite(i)
            parents = {site.getParticle(k) for k in range(site.getNumParticles())}
            if i in qm_set or parents & qm_set:
                raise ValueError(f"partition: virtual site {i} belongs to the QM region; QM regions with virtual sites are not supported")
    out = copy.deepcopy(system)
    for k in reversed(range(out.getNumConstraints())):
        a, b, _ = out.getConstraintParameters(k)
        if a in qm_set and b in qm_set:
            out.removeConstraint(k)
        elif a in qm_set or b in qm_set:
            raise ValueError(f"partition: constraint between QM atom and MM atom ({a}, {b}); cut bonds must not be constrained")
    qm_pairs = {(a, b) for n, a in enumerate(sorted(qm)) for b in sorted(qm)[n + 1 :]}
    for k in reversed(range(out.getNumForces())):
        force = out.getForce(k)
        if isinstance(force, openmm.NonbondedForce):
            scale14: float | None = None  # found on the first 1-4 pair that needs it
            new = {i: float(q) for i, q in zip(qm, charges)}
            if mm_charges_e is not None:
                for i, q in enumerate(np.asarray(mm_charges_e, float)):
                    if i not in qm_set and q != force.getParticleParameters(i)[0].value_in_unit(unit.elementary_charge):
                        new[i] = float(q)
            for i, q in new.items():
                _, sigma, epsilon = force.getParticleParameters(i)
                force.setParticleParameters(i, q, sigma, epsilon)
            missing = set(qm_pairs)
            for e in range(force.getNumExceptions()):
                a, b, qq, sigma, epsilon = force.getExceptionParameters(e)
                if a in qm_set and b in qm_set:
                    force.setExceptionParameters(e, a, b, 0.0, sigma, 0.0)
                    missing.discard((min(a, b), max(a, b)))
                elif (a in new or b in new) and (qq.value_in_unit(unit.elementary_charge**2) != 0.0
                                                 or epsilon.value_in_unit(unit.kilojoule_per_mole) != 0.0):
                    # a 1-4 pair across the boundary or next to it (exclusions have neither charge nor LJ)
                    if scale14 is None:
                        scale14 = _coulomb14_scale(system.getForce(k))  # the force field's, before the changes
                    qa, qb = (force.getParticleParameters(i)[0].value_in_unit(unit.elementary_charge) for i in (a, b))
                    force.setExceptionParameters(e, a, b, scale14 * qa * qb, sigma, epsilon)
            for a, b in sorted(missing):
                force.addException(a, b, 0.0, 1.0, 0.0)
        elif isinstance(force, openmm.CustomNonbondedForce):
            excluded = {tuple(sorted(force.getExclusionParticles(e))) for e in range(force.getNumExclusions())}
            for a, b in sorted(qm_pairs - excluded):
                force.addExclusion(a, b)
        elif isinstance(force, _BONDED_FORCES):
            kept = _without_qm_terms(force, qm_set)
            out.removeForce(k)  # deletes ``force``
            out.addForce(kept)
        elif not isinstance(force, openmm.CMMotionRemover):
            raise ValueError(f"partition: OpenMM force {type(force).__name__} is not supported in the QM/MM partition")
    return out


#: OpenMM platforms mlmm runs on: CPU (the default everywhere), Reference (double precision,
#: slow: for finite-difference checks of forces).
PLATFORMS = ("CPU", "Reference")


def mm_platform(name: str = "CPU") -> tuple[openmm.Platform, dict[str, str]]:
    """An OpenMM platform of :data:`PLATFORMS` and its properties. The CPU platform's ``Threads``
    come from ``OPENMM_CPU_THREADS`` (set per job by :func:`mlmm.jobs.set_threads`), 1 outside a
    job, so results do not depend on the machine's core count. The variable itself is set too:
    the PME reciprocal-space kernel takes its thread count from it, not from ``Threads``, and
    with more threads than asked for its sums (seen: 1e-7 eV) differed from Context to Context."""
    if name not in PLATFORMS:
        raise ValueError(f"OpenMM platform {name!r}: expected one of {PLATFORMS}")
    threads = os.environ.setdefault("OPENMM_CPU_THREADS", "1")
    properties = {"Threads": threads} if name == "CPU" else {}
    return openmm.Platform.getPlatformByName(name), properties


class OpenMMTerm:
    """MM part of a QM/MM potential on the full system: the partitioned force field in an OpenMM
    Context (CPU platform); energies eV, forces eV/Å, positions in mlmm order (QM atoms first).

    ``qm_charges_e`` (mlmm order of the QM atoms): fixed QM charges kept in the force field's
    Coulomb term (mechanical embedding); None: the QM region has no MM electrostatics.
    ``platform``: one of :data:`PLATFORMS` (the CPU platform computes in mixed precision: forces
    are precise to ~1e-4 eV/Å, energies to ~1e-6 relative).
    """

    def __init__(self, system: "System", qm_charges_e: Sequence[float] | None = None, platform: str = "CPU") -> None:
        self.system = system
        self.platform = platform
        qm_file = system.original_index[: system.n_qm]
        self.openmm_system = partition(system.mm.system, qm_file, qm_charges_e,
                                       system.mm_charges_file_order() if system.links else None)
        platform, properties = mm_platform(platform)
        self.integrator = openmm.VerletIntegrator(1.0 * unit.femtosecond)  # never steps; the Context needs one
        self.context = openmm.Context(self.openmm_system, self.integrator, platform, properties)
        if system.mm.box_vectors_ang is not None:
            self.context.setPeriodicBoxVectors(*(system.mm.box_vectors_ang * unit.angstrom))

    def energy_forces(self, positions_ang: np.ndarray) -> tuple[float, np.ndarray]:
        """MM energy (eV) and forces (eV/Å) on every atom of the full system (mlmm order)."""
        self.context.setPositions(self.system.to_file_order(np.asarray(positions_ang, float)) / NM_TO_ANGSTROM)
        state = self.context.getState(getEnergy=True, getForces=True)
        energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) * KJ_PER_MOL_TO_EV
        forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
        return float(energy), self.system.from_file_order(np.asarray(forces, float)) * KJ_PER_MOL_NM_TO_EV_PER_ANGSTROM
