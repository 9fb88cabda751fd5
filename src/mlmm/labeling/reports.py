"""Records of the labeling jobs (chunk reports, the merged report of an iteration, excited-state
labels), kept apart from the PySCF code so the stages that only read them need no PySCF."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from mlmm.records import Record, nested, optional


@dataclass
class ChunkReport(Record):
    """``labels/it{i}/chunk{c}.json``: one labeling chunk. ``frames`` has one entry per frame of the
    slice: ``frame_id``, ``index``, ``status`` ('ok' or the failure reason), ``resumed``, timings (s)."""

    frames_path: str
    chunk_index: int
    chunk_size: int
    frame_range: list[int]
    level: dict[str, Any]
    pyscf_version: str
    n_frames: int
    n_ok: int
    n_failed: int
    n_resumed: int
    wall_s: float
    frames: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class LabelReport(Record):
    """``labels/it{i}/report.json``: the chunk reports of an iteration merged (``failed``: the
    entries whose status is not 'ok')."""

    n_frames: int
    n_ok: int
    n_failed: int
    failed: list[dict[str, Any]] = field(default_factory=list)
    frames: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def merge(cls, reports: Sequence[ChunkReport]) -> "LabelReport":
        """One report of the frame entries of ``reports`` (in order)."""
        entries = [e for r in reports for e in r.frames]
        failed = [e for e in entries if e["status"] != "ok"]
        return cls(len(entries), len(entries) - len(failed), len(failed), failed, entries)


@dataclass
class ExcitedFrameLabel(Record):
    """One frame's excited-state labels (energies eV, dipoles e·Å); a failed frame has only
    ``index``, ``frame_id``, ``status`` (the reason) and ``source_index``.

    ``index``: position in the labelled subset; ``source_index``: position in the frames file;
    ``sampler``: the frame's ``info["sampler"]`` (absorption takes unbiased samplers only);
    ``bright_transition_dipole_e_ang``: the bright state's transition dipole in the phase of the
    state reference (positive projection on it), where one was used.
    """

    index: int
    frame_id: str
    status: str
    ground_energy_ev: float | None = optional()
    excitation_energies_ev: list[float] | None = optional()
    oscillator_strengths: list[float] | None = optional()
    transition_dipoles_e_ang: list[list[float]] | None = optional()
    bright_state: int | None = optional()
    bright_ambiguous: bool | None = optional()
    bright_reason: str | None = optional()
    bright_score: float | None = optional()
    bright_excitation_energy_ev: float | None = optional()
    bright_oscillator_strength: float | None = optional()
    bright_energy_ev: float | None = optional()
    wall_s: float | None = optional()
    source_index: int | None = optional()
    sampler: str | None = optional()
    bright_transition_dipole_e_ang: list[float] | None = optional()

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class ExcitedLabels(Record):
    """``excited/labels/records.json`` (also ``excited/reference/``, ``excited/al/it{i}/``): TDA/TDDFT
    of a subset of frames.

    ``n_training_rows`` (bright-state label DB rows: unambiguous frames) only where a DB was written.
    """

    level: dict[str, Any]
    td: dict[str, Any]
    frames: str
    n_frames: int
    n_ok: int
    n_ambiguous: int
    bright_state_counts: dict[str, int]
    records: list[ExcitedFrameLabel] = nested(ExcitedFrameLabel)
    n_training_rows: int | None = optional()

    def ok_records(self) -> list[ExcitedFrameLabel]:
        """The records of the frames labelled successfully."""
        return [r for r in self.records if r.ok]


@dataclass
class StateReference(Record):
    """``excited/state_reference.json``: the one reference of the bright state for every stage.

    TDA/TDDFT of the input structure's Frame: the bright state there (largest oscillator strength
    in ``excited.td.window``, unambiguous) with its transition dipole (e·Å, phase fixed: its
    largest Cartesian component positive) at the QM geometry ``qm_positions_ang`` (Å). Every
    labelling stage rotates the dipole into its frame's orientation (Kabsch on the QM atoms) and
    takes the state that overlaps it most, so the state is the same one in the ground-state
    ensemble, the AL selections and the reference check.
    """

    source: str
    frame_id: str
    qm_symbols: list[str]
    qm_positions_ang: list[list[float]]
    state_index: int
    excitation_energy_ev: float
    oscillator_strength: float
    transition_dipole_e_ang: list[float]
    level: dict[str, Any]
    td: dict[str, Any]
