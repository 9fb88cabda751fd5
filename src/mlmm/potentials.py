"""QM/MM potentials: the QM-term protocol and the one place that builds a potential from a name.

A QM/MM potential is an ASE calculator on the full system (:class:`QMMMCalculator`): a QM term
evaluated on the Frame cut around the QM region plus an MM part on all atoms. The two are
independent: the QM term returns energy and forces on the QM atoms *and* on every MM site of the
Frame it sees (its electrostatic coupling, if any); the MM part adds what it computes itself
(MM–MM, QM–MM Lennard-Jones, and for mechanical embedding the fixed-charge Coulomb term). An MM
engine only needs ``energy_forces(positions_ang)`` (:class:`MMTerm`).

:func:`build_potential` knows four potentials (:data:`POTENTIALS`):

``xtb``
    GFN2-xTB (tblite, vacuum) on the QM region + mechanical embedding: the QM region's GFN2
    Mulliken charges, fixed at the start geometry, in the force field's Coulomb term (PME in a
    box) next to its QM–MM Lennard-Jones (the samplers' potential).
``xtb_point_charges``
    GFN2-xTB of the QM region in the MM point charges (``xtb`` program, ``$embedding``; forces on
    the MM sites too) + MM force field without QM charges.
``ensemble``
    The ML ensemble's mean on the Frame (QM atoms and MM sites) + MM force field without QM charges.
    Without a bias and link atoms, MD evaluates it without Frames, through the batched committee
    and a neighbour list of MM sites (:class:`mlmm.model.committee.CommitteeMDTerm`, same result).
``delta``
    Baseline QM term (``training.delta`` of the members) + the ensemble's learned correction
    (:class:`DeltaTerm`) + MM force field without QM charges.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Protocol

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from mlmm.mm import OpenMMTerm
from mlmm.settings import EmbeddingSettings
from mlmm.system import System

if TYPE_CHECKING:  # torch is imported only where an ensemble is used
    from mlmm.model.committee import CommitteeMDTerm
    from mlmm.model.ensemble import Ensemble
    from mlmm.settings import BiasSettings

log = logging.getLogger(__name__)


class QMTerm(Protocol):
    """QM part of a QM/MM potential, evaluated on a Frame (see docs/CONTRACTS.md)."""

    def compute(self, frame: Atoms) -> dict[str, Any]:
        """``energy`` (eV), ``forces`` ((n_frame, 3) eV/Å on QM atoms and MM sites), optional
        ``sigma_force`` (eV/Å, ensemble uncertainty)."""
        ...


class MMTerm(Protocol):
    """MM part of a QM/MM potential on the full system (any MM engine)."""

    def energy_forces(self, positions_ang: np.ndarray) -> tuple[float, np.ndarray]:
        """Energy (eV) and forces ((n_atoms, 3) eV/Å) of the full system's MM terms."""
        ...


class QMMMCalculator(Calculator):
    """ASE calculator for the full system: QM term on the cut Frame + MM part on all atoms.

    ``results`` hold ``energy``/``forces`` (eV, eV/Å) plus ``qm_energy``, ``mm_energy`` and the QM
    term's ``sigma_force`` (eV/Å) when it gives one. ``embedding`` (``system.embedding``) is the
    embedding the Frame is cut with (:meth:`mlmm.system.System.cut_frame`). MD runs the MM part in
    OpenMM itself and adds the QM part through :meth:`qm_energy_forces` (:mod:`mlmm.dynamics.md`).
    """

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, system: System, qm_term: QMTerm, mm: MMTerm, embedding: EmbeddingSettings,
                 md_term: "CommitteeMDTerm | None" = None) -> None:
        """``md_term``: the same QM term on full-system positions without a Frame
        (:class:`mlmm.model.committee.CommitteeMDTerm`), used in the system's own box."""
        super().__init__()
        self.system = system
        self.qm_term = qm_term
        self.mm = mm
        self.embedding = embedding
        self.md_term = md_term

    def qm_energy_forces(self, positions_ang: np.ndarray, box_vectors_ang: np.ndarray | None = None
                         ) -> tuple[float, np.ndarray, dict[str, Any]]:
        """The QM term on the Frame cut at ``positions_ang`` (full system, mlmm order): energy (eV),
        forces (eV/Å) on every atom of the full system (QM atoms and the MM sites the Frame holds;
        zero elsewhere; link atoms' forces handed to their bond's atoms) and the term's other outputs (``sigma_force`` …). ``box_vectors_ang``: the
        box to cut in when it is not the system's (NPT)."""
        pos = np.asarray(positions_ang, float)
        if self.md_term is not None and box_vectors_ang is None:
            return self.md_term.energy_forces(pos)
        system = self.system if box_vectors_ang is None else self.system.with_box(box_vectors_ang)
        frame, index = system.cut_frame(
            pos, self.embedding, sampler="qmmm_calculator", iteration=0, source=self.system.source, seed=0
        )
        qm = self.qm_term.compute(frame)
        forces = system.full_forces(frame, qm["forces"], index)
        return float(qm["energy"]), forces, {k: v for k, v in qm.items() if k not in ("energy", "forces")}

    def calculate(self, atoms: Atoms | None = None, properties: list[str] | None = None,
                  system_changes: list[str] = all_changes) -> None:
        """Evaluate the QM term on the cut Frame and the MM part on all atoms."""
        super().calculate(atoms, properties or ["energy"], system_changes)
        pos = self.atoms.positions
        e_qm, forces, extras = self.qm_energy_forces(pos)
        e_mm, f_mm = self.mm.energy_forces(pos)
        self.results = {
            "energy": e_qm + e_mm,
            "free_energy": e_qm + e_mm,
            "forces": forces + f_mm,
            "qm_energy": e_qm,
            "mm_energy": e_mm,
        }
        if extras.get("sigma_force") is not None:
            self.results["sigma_force"] = float(extras["sigma_force"])


class DeltaTerm:
    """Δ-learning QM term: baseline QM term + the ensemble's learned correction.

    ``compute`` returns the ensemble's keys with the baseline added to ``energy``, ``forces``,
    ``energies`` and ``member_forces`` (so σ and the member spread are those of the correction),
    plus ``baseline_energy`` (eV).
    """

    def __init__(self, baseline: QMTerm, ensemble: "Ensemble") -> None:
        self.baseline = baseline
        self.ensemble = ensemble

    def compute(self, frame: Atoms) -> dict[str, Any]:
        result = self.ensemble.compute(frame)
        base = self.baseline.compute(frame)
        e0, f0 = float(base["energy"]), np.asarray(base["forces"], float)
        result["energy"] += e0
        result["forces"] = result["forces"] + f0
        result["energies"] = result["energies"] + e0
        result["member_forces"] = result["member_forces"] + f0[None]
        result["baseline_energy"] = e0
        return result


def _xtb_mechanical() -> QMTerm:
    from mlmm.engines.xtb import XTBTerm

    return XTBTerm()


def _xtb_point_charges() -> QMTerm:
    from mlmm.engines.xtb import XTBEmbeddingTerm

    return XTBEmbeddingTerm()


#: QM terms that need no trained model, by name.
QM_TERMS: dict[str, Callable[[], QMTerm]] = {"xtb": _xtb_mechanical, "xtb_point_charges": _xtb_point_charges}
#: ``training.delta`` value -> QM term of the Δ-learning baseline ("none": learn the reference).
BASELINE_TERMS: dict[str, str | None] = {"none": None, "xtb": "xtb_point_charges"}


def qm_term(name: str) -> QMTerm:
    """A fresh QM term without a trained model: ``xtb`` (tblite, vacuum) or ``xtb_point_charges``."""
    if name not in QM_TERMS:
        raise ValueError(f"unknown QM term {name!r}; known: {sorted(QM_TERMS)}")
    return QM_TERMS[name]()


def baseline_term(delta: str) -> QMTerm | None:
    """The baseline QM term of ``training.delta`` (None for "none")."""
    if delta not in BASELINE_TERMS:
        raise ValueError(f"unknown Δ-learning baseline {delta!r}; known: {sorted(BASELINE_TERMS)}")
    name = BASELINE_TERMS[delta]
    return None if name is None else qm_term(name)


def ensemble_potential_name(ensemble: "Ensemble") -> str:
    """``delta`` for members trained on corrections to a baseline, ``ensemble`` otherwise."""
    return "ensemble" if ensemble.delta == "none" else "delta"


def ensemble_term(ensemble: "Ensemble", bias: "BiasSettings | None" = None, **bias_context: Any) -> QMTerm:
    """The QM term of trained members: the ensemble itself or, for Δ-trained members, baseline +
    correction; with ``bias`` (``al.bias``) wrapped in the uncertainty bias
    (:func:`mlmm.sampling.uncertainty.biased_term`, which takes ``bias_context``)."""
    from mlmm.sampling.uncertainty import biased_term

    base = baseline_term(ensemble.delta)
    return biased_term(ensemble if base is None else DeltaTerm(base, ensemble), bias, **bias_context)


def _xtb_parts(system: System, platform: str) -> tuple[QMTerm, MMTerm]:
    """tblite GFN2-xTB + MM with the QM region's GFN2 Mulliken charges fixed at the start geometry
    (a link atom's charge added to its QM atom Q1, so the QM charges keep the region's total)."""
    from mlmm.engines.xtb import xtb_charges

    symbols, positions = system.qm_cluster(system.atoms.positions)
    cluster = xtb_charges(symbols, positions, system.qm_charge, system.multiplicity)
    charges = cluster[: system.n_qm].copy()
    np.add.at(charges, system.link_arrays[0], cluster[system.n_qm :])
    log.info("xtb: fixed GFN2 Mulliken charges of the QM region (e): %s", np.round(charges, 3).tolist())
    return qm_term("xtb"), OpenMMTerm(system, qm_charges_e=charges, platform=platform)


def _xtb_point_charge_parts(system: System, platform: str) -> tuple[QMTerm, MMTerm]:
    """xtb-program GFN2-xTB in the MM point charges + MM without QM charges."""
    return qm_term("xtb_point_charges"), OpenMMTerm(system, platform=platform)


#: QM/MM potentials :func:`build_potential` builds; ``ensemble``/``delta`` need trained members.
POTENTIALS = ("xtb", "xtb_point_charges", "ensemble", "delta")
_MODEL_FREE: dict[str, Callable[[System, str], tuple[QMTerm, MMTerm]]] = {
    "xtb": _xtb_parts, "xtb_point_charges": _xtb_point_charge_parts,
}


def build_potential(
    name: str,
    system: System,
    *,
    embedding: EmbeddingSettings,
    ensemble: "Ensemble | None" = None,
    bias: "BiasSettings | None" = None,
    mm_platform: str = "CPU",
    bias_context: "dict[str, Any] | None" = None,
) -> QMMMCalculator:
    """The QM/MM potential ``name`` (:data:`POTENTIALS`, see module docstring) of ``system``.

    ``embedding``: the embedding of the QM term's Frame (``system.embedding``); the MM part's
    nonbonded method and cutoff are the system's (``system.nonbonded``); ``mm_platform`` is its
    OpenMM platform (CPU; Reference for double-precision checks). ``ensemble`` (loaded members) and
    ``bias`` (``al.bias``, with the walker's ``bias_context`` for metadynamics) are for ``ensemble``/``delta`` only; the members' ``training.delta`` must
    match the name (``delta`` iff they learned corrections), and they must have been trained with
    ``embedding``.
    """
    if name not in POTENTIALS:
        raise ValueError(f"unknown QM/MM potential {name!r}; known: {list(POTENTIALS)}")
    if name in _MODEL_FREE:
        if ensemble is not None or bias is not None:
            raise ValueError(f"QM/MM potential {name!r} takes no ensemble or bias")
        term, mm = _MODEL_FREE[name](system, mm_platform)
        return QMMMCalculator(system, term, mm, embedding)
    if ensemble is None:
        raise ValueError(f"QM/MM potential {name!r} needs the trained ensemble")
    if ensemble_potential_name(ensemble) != name:
        raise ValueError(f"QM/MM potential {name!r}: the members were trained with training.delta "
                         f"{ensemble.delta!r}; use {ensemble_potential_name(ensemble)!r}")
    ensemble.check_embedding(embedding, f"QM/MM potential {name!r} of {system.source}: system.embedding")
    from mlmm.model.committee import CommitteeMDTerm

    md_term = None if bias is not None else CommitteeMDTerm.for_system(system, ensemble, embedding)
    return QMMMCalculator(system, ensemble_term(ensemble, bias, **(bias_context or {})),
                          OpenMMTerm(system, platform=mm_platform), embedding, md_term)


def ensemble_potential(system: System, ensemble: "Ensemble", *, embedding: EmbeddingSettings,
                       bias: "BiasSettings | None" = None, mm_platform: str = "CPU",
                       bias_context: "dict[str, Any] | None" = None) -> QMMMCalculator:
    """The MLP/MM potential of trained members (``ensemble`` or ``delta``, from their training.delta)."""
    return build_potential(ensemble_potential_name(ensemble), system, embedding=embedding, ensemble=ensemble, bias=bias,
                           mm_platform=mm_platform, bias_context=bias_context)
