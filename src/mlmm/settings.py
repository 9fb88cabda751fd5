"""Typed, frozen settings built once from the validated config (one class per schema section).

The schema (workflow/schemas/config.schema.yaml, via :func:`mlmm.config.validate_config`) is the
only place a default lives: these classes have none, every field name is the config key, and
``from_dict`` refuses a mapping with a missing or unknown key, naming the section. Sections that
run MD inherit :class:`MDSettings` (the schema's shared ``$defs/md`` block). Lists in the config
become tuples (the objects are immutable); :meth:`Section.to_dict` gives the plain mapping back.

A rule passes its config section as a plain mapping (Snakemake ``params:``, so a changed value
reruns the job); its glue script builds the object once, and the stage and library functions
below take the typed settings::

    sampler=XtbMDSettings.from_dict(snakemake.params.sampler)

Units are those of the schema: Å, fs, K, eV, e (named per field below).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, TypeVar

S = TypeVar("S", bound="Section")


class SettingsError(ValueError):
    """A config mapping does not have exactly the keys of its settings class."""


def _freeze(value: Any) -> Any:
    """Lists (at any depth) as tuples."""
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    """Tuples back to lists and sections back to dicts (the config's plain form)."""
    if isinstance(value, Section):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class Section:
    """Base of every settings class: construction from and back to the config mapping."""

    #: Dotted config path of the section (named in errors).
    SECTION: ClassVar[str] = ""

    @classmethod
    def from_dict(cls: type[S], data: Mapping[str, Any], section: str | None = None) -> S:
        """Build from the validated config mapping of this section; ``section`` names it in errors."""
        name = cls.SECTION if section is None else section
        prefix = f"{name}." if name else ""
        name = name or "config"
        if not isinstance(data, Mapping):
            raise SettingsError(f"{name}: expected a mapping, got {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        keys = [f.name for f in dataclasses.fields(cls)]
        missing = sorted(set(keys) - set(data))
        unknown = sorted(set(data) - set(keys))
        if missing or unknown:
            raise SettingsError(
                f"{name}: "
                + "; ".join(
                    part
                    for part in (f"missing key(s) {missing}" if missing else "", f"unknown key(s) {unknown}" if unknown else "")
                    if part
                )
                + " (settings are built from the config validated by mlmm.config.validate_config)"
            )
        values = {}
        for key in keys:
            kind, value = _section_type(hints[key]), data[key]
            if kind is None:
                values[key] = _freeze(value)
            elif typing.get_origin(hints[key]) is tuple:
                values[key] = tuple(kind.from_dict(v, f"{prefix}{key}[{i}]") for i, v in enumerate(value))
            else:
                values[key] = kind.from_dict(value, f"{prefix}{key}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The plain config mapping (lists, nested dicts) these settings were built from."""
        return {f.name: _thaw(getattr(self, f.name)) for f in dataclasses.fields(self)}


def _section_type(hint: Any) -> type[Section] | None:
    """The Section class a field holds (directly or as ``tuple[Section, ...]``), else None."""
    if isinstance(hint, type) and issubclass(hint, Section):
        return hint
    if typing.get_origin(hint) is tuple:
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        if len(args) == 1 and isinstance(args[0], type) and issubclass(args[0], Section):
            return args[0]
    return None


@dataclass(frozen=True)
class MDSettings(Section):
    """Langevin MD (schema ``$defs/md``): ``timestep`` (fs), ``temperature`` (K), ``friction`` (1/fs)."""

    SECTION: ClassVar[str] = "$defs.md"
    timestep: float
    temperature: float
    friction: float


@dataclass(frozen=True)
class ThreadsSettings(Section):
    """Threads per job of each rule group (``threads``)."""

    SECTION: ClassVar[str] = "threads"
    sampling: int
    labeling: int
    training: int
    md: int


@dataclass(frozen=True)
class EmbeddingSettings(Section):
    """The electrostatic embedding (``system.embedding``, :mod:`mlmm.embedding`): MM groups are
    switched off smoothly from ``cutoff − switch_width`` to ``cutoff`` (both Å)."""

    SECTION: ClassVar[str] = "system.embedding"
    cutoff: float
    switch_width: float


@dataclass(frozen=True)
class NonbondedSettings(Section):
    """Nonbonded method of the MM part (``system.nonbonded``); ``cutoff`` in Å."""

    SECTION: ClassVar[str] = "system.nonbonded"
    method: str
    cutoff: float
    dispersion_correction: bool
    ewald_tolerance: float


@dataclass(frozen=True)
class SystemSettings(Section):
    """The QM/MM system (``system``); ``qm_charge`` in e, ``embedding`` the MM charges the QM region sees."""

    SECTION: ClassVar[str] = "system"
    structure: str
    force_field: tuple[str, ...]
    topology: str | None
    parameters: tuple[str, ...]
    gromacs_include: str | None
    nonbonded: NonbondedSettings
    qm_selection: str
    link_atoms: bool
    qm_charge: int
    multiplicity: int
    embedding: EmbeddingSettings


@dataclass(frozen=True)
class XtbMDSettings(MDSettings):
    """xTB/MM Langevin sampler (``sampling.xtb_md``)."""

    SECTION: ClassVar[str] = "sampling.xtb_md"
    activate: bool
    equilibration_steps: int
    stride: int
    n_frames: int
    seed: int


@dataclass(frozen=True)
class MetadynamicsSamplerSettings(MDSettings):
    """PLUMED metadynamics sampler on xTB/MM (``sampling.metadynamics``; PLUMED units in ``plumed``)."""

    SECTION: ClassVar[str] = "sampling.metadynamics"
    activate: bool
    plumed: str
    biasfactor: float | None
    equilibration_steps: int
    stride: int
    n_frames: int
    seed: int


@dataclass(frozen=True)
class NormalModesSettings(Section):
    """Normal-mode sampler (``sampling.normal_modes``): ``temperature`` K, ``min_distance`` Å."""

    SECTION: ClassVar[str] = "sampling.normal_modes"
    activate: bool
    temperature: float
    environment: str
    distribution: str
    min_distance: float
    n_frames: int
    seed: int


@dataclass(frozen=True)
class WignerSettings(Section):
    """Wigner sampler (``sampling.wigner``): ``temperature`` K, ``min_distance`` Å."""

    SECTION: ClassVar[str] = "sampling.wigner"
    activate: bool
    temperature: float
    environment: str
    min_distance: float
    n_frames: int
    seed: int


@dataclass(frozen=True)
class PCASettings(Section):
    """PCA sampler (``sampling.pca``): ``min_distance`` Å."""

    SECTION: ClassVar[str] = "sampling.pca"
    activate: bool
    trajectory: str
    n_components: int
    extend: float
    min_distance: float
    n_frames: int
    seed: int


@dataclass(frozen=True)
class AdaptiveSettings(MDSettings):
    """Adaptive sampler (``sampling.adaptive``): ``cvs`` 0-based QM indices, bin widths Å / degrees."""

    SECTION: ClassVar[str] = "sampling.adaptive"
    activate: bool
    cvs: tuple[tuple[int, ...], ...]
    bin_width_ang: float
    bin_width_deg: float
    n_walkers: int
    steps: int
    stride: int
    max_rounds: int
    min_growth: float
    n_frames: int
    seed: int


@dataclass(frozen=True)
class SamplingSettings(Section):
    """All samplers (``sampling``)."""

    SECTION: ClassVar[str] = "sampling"
    xtb_md: XtbMDSettings
    metadynamics: MetadynamicsSamplerSettings
    normal_modes: NormalModesSettings
    wigner: WignerSettings
    pca: PCASettings
    adaptive: AdaptiveSettings


@dataclass(frozen=True)
class LevelSettings(Section):
    """SCF level of theory (``labeling.level``, ``excited.level``): 'hf' or a PySCF XC functional.

    Closed shells use RHF/RKS, open shells UHF/UKS; ``conv_tol`` in Hartree; ``grid_level``
    (0-9) applies to DFT only. Method and basis names are case-insensitive (PySCF's are).
    """

    SECTION: ClassVar[str] = "labeling.level"
    method: str
    basis: str
    density_fit: bool
    grid_level: int
    conv_tol: float
    max_cycle: int

    @property
    def is_hf(self) -> bool:
        """True for Hartree-Fock, False for Kohn-Sham DFT."""
        return self.method.strip().lower() == "hf"

    @property
    def label(self) -> str:
        """Short label stored with every labelled row, e.g. 'b3lyp/def2-svp+df'."""
        return f"{self.method.strip().lower()}/{self.basis.strip().lower()}" + ("+df" if self.density_fit else "")


@dataclass(frozen=True)
class LabelingSettings(Section):
    """PySCF labeling (``labeling``)."""

    SECTION: ClassVar[str] = "labeling"
    chunk_size: int
    level: LevelSettings


@dataclass(frozen=True)
class TestSetSettings(Section):
    """The run's fixed test set (``test_set``): ``n_frames`` per trajectory, one thermal xTB/MM
    trajectory per ``temperature_factors`` entry (× production temperature, K), plus a metadynamics
    run when ``metadynamics`` and sampling.metadynamics has a PLUMED input; base ``seed``."""

    SECTION: ClassVar[str] = "test_set"
    n_frames: int
    temperature_factors: tuple[float, ...]
    metadynamics: bool
    seed: int


@dataclass(frozen=True)
class FieldAblationSettings(Section):
    """With/without-field comparison (``training.field_ablation``)."""

    SECTION: ClassVar[str] = "training.field_ablation"
    activate: bool


@dataclass(frozen=True)
class TrainingSettings(Section):
    """Field-aware SchNet ensemble (``training``): ``cutoff`` (QM–QM) in Å; the MM field input uses
    the system's embedding (``system.embedding``); loss weights on MSEs in eV² and (eV/Å)²; ``lr`` per Adam step; ``device`` 'auto', 'cpu'
    or 'cuda' (resolve with :func:`mlmm.model.device.resolve_device`)."""

    SECTION: ClassVar[str] = "training"
    n_members: int
    seed: int
    representation: str
    n_atom_basis: int
    n_interactions: int
    n_rbf: int
    cutoff: float
    lr: float
    batch_size: int
    max_epochs: int
    patience: int
    energy_weight: float
    forces_weight: float
    mm_forces_weight: float
    val_fraction: float
    bootstrap: bool
    use_field: bool
    lr_schedule: str
    warm_start: bool
    device: str
    delta: str
    field_ablation: FieldAblationSettings


@dataclass(frozen=True)
class BiasSettings(Section):
    """Uncertainty bias of AL walkers (``al.bias``): kind ``sigma``: ``strength`` eV, ``width`` eV per
    sqrt(QM atom); kind ``metadynamics``: hill ``height`` kJ/mol, ``cv_width`` eV per sqrt(QM atom),
    ``pace`` steps, ``biasfactor``."""

    SECTION: ClassVar[str] = "al.bias"
    kind: str
    strength: float
    width: float
    height: float
    cv_width: float
    pace: int
    biasfactor: float


#: ``al`` keys a per-iteration rule (explore, select) leaves out of its params.
AL_LOOP_KEYS: tuple[str, ...] = ("max_iterations",)


@dataclass(frozen=True)
class ALSettings(MDSettings):
    """Active learning (``al``; the bright-state loop passes ``al`` updated with ``excited.al``).

    σ thresholds and ``max_force`` in eV/Å, ``temperatures`` in K.
    """

    SECTION: ClassVar[str] = "al"
    #: None inside a per-iteration job: its rule's params omit it (see :meth:`from_rule_params`)
    max_iterations: int | None
    n_walkers: int
    steps: int
    stride: int
    sigma_lo: float
    sigma_hi: float
    sigma_stop: float
    sigma_hi_relative: float
    sigma_stop_relative: float
    max_force: float
    max_selected: int
    temperatures: tuple[float, ...]
    stability_steps: int
    converged_fraction: float
    validation_tolerance: float
    calibrated_thresholds: bool
    bias: BiasSettings
    metadynamics_walkers: int
    seed: int
    initial: str
    wigner_environment: str

    @classmethod
    def from_rule_params(cls, data: Mapping[str, Any], section: str | None = None) -> "ALSettings":
        """From the ``al`` params of a per-iteration rule: the whole section but ``max_iterations``.

        A rule's params are its rerun trigger, so the loop's length must not be among them, or
        raising ``al.max_iterations`` to extend a run would rerun every finished iteration; no
        per-iteration step reads it (the DAG has the iterations), so it is None here.
        """
        present = sorted(set(AL_LOOP_KEYS) & set(data))
        if present:
            raise SettingsError(f"{section or cls.SECTION}: rule params must not carry {present}")
        return cls.from_dict({**data, **dict.fromkeys(AL_LOOP_KEYS)}, section)


#: excited.al keys of the bright selection alone (its own rule params), not overrides of ``al``.
BRIGHT_SELECTION_KEYS: tuple[str, ...] = ("property_sigma",)


def bright_al_section(al: Mapping[str, Any], excited_al: Mapping[str, Any]) -> dict[str, Any]:
    """The ``al`` section the bright-state loop runs with: ``al`` updated with ``excited.al`` (but
    :data:`BRIGHT_SELECTION_KEYS`), without the stability probe (it runs at the ground-state
    production conditions: ground loop only)."""
    bright = {k: v for k, v in excited_al.items() if k not in BRIGHT_SELECTION_KEYS}
    return {**al, **bright, "stability_steps": 0}


@dataclass(frozen=True)
class ProductionMetadynamicsSettings(Section):
    """MLP/MM metadynamics (``production.metadynamics``; PLUMED units in ``plumed``)."""

    SECTION: ClassVar[str] = "production.metadynamics"
    activate: bool
    plumed: str
    biasfactor: float
    replicas: int
    steps: int
    bins: int
    sigma_action: str


@dataclass(frozen=True)
class CVDistance(Section):
    """One distance followed in production: centres of geometry of two MDAnalysis selections (Å)."""

    SECTION: ClassVar[str] = "production.cv_distances[]"
    name: str
    selection1: str
    selection2: str


@dataclass(frozen=True)
class ProductionSettings(MDSettings):
    """MLP/MM production (``production``): σ and ``max_force`` in eV/Å, ``rdf_range`` Å, ``pressure`` bar."""

    SECTION: ClassVar[str] = "production"
    steps: int
    stride: int
    sigma_stop: float
    sigma_action: str
    max_force: float
    seed: int
    replicas: int
    pressure: float | None
    checkpoint_steps: int
    compare_initial_model: bool
    nve_steps: int
    nve_equilibration_steps: int
    metadynamics: ProductionMetadynamicsSettings
    rdf_reference: str | None
    rdf_solvent: str
    rdf_range: float
    cv_distances: tuple[CVDistance, ...]


@dataclass(frozen=True)
class TDSettings(Section):
    """Excited-state solver and bright-state assignment (``excited.td``).

    ``n_states``: lowest singlet excitations computed; ``tda``: Tamm-Dancoff or full TDDFT/TDHF;
    ``window``: the bright state is searched among the lowest ``window`` states; ``f_min``:
    minimum oscillator strength of a bright state; ``ambiguity_ratio``: without a reference, flag
    when the runner-up has f >= ratio·f_best; ``min_overlap`` / ``overlap_margin``: with a
    reference transition dipole, flag when the best overlap |μ·μ_ref|/max(|μ|,|μ_ref|)² is below
    ``min_overlap`` or within ``overlap_margin`` of the runner-up; ``conv_tol``: Davidson
    convergence (Hartree); ``tracking``: 'reference' (the one state reference of the run) or
    'none' (largest f in every frame).
    """

    SECTION: ClassVar[str] = "excited.td"
    n_states: int
    tda: bool
    window: int
    f_min: float
    ambiguity_ratio: float
    min_overlap: float
    overlap_margin: float
    conv_tol: float
    tracking: str


@dataclass(frozen=True)
class ExcitedTrainingSettings(Section):
    """Bright-state ensemble overrides of ``training`` (``excited.training``)."""

    SECTION: ClassVar[str] = "excited.training"
    n_members: int
    max_epochs: int
    patience: int


@dataclass(frozen=True)
class ExcitedALSettings(Section):
    """Bright-state AL overrides of ``al`` (``excited.al``): σ in eV/Å; ``property_sigma`` (eV,
    None = off) is the bright selection's threshold on the property model's ΔE σ."""

    SECTION: ClassVar[str] = "excited.al"
    max_iterations: int
    n_walkers: int
    steps: int
    stride: int
    sigma_lo: float
    sigma_hi: float
    sigma_stop: float
    max_selected: int
    seed: int
    initial: str
    wigner_environment: str
    property_sigma: float | None


@dataclass(frozen=True)
class NeuralPropertySettings(Section):
    """Field-aware neural property model (``excited.property_model.neural``): ``cutoff`` Å, ``lr`` per step."""

    SECTION: ClassVar[str] = "excited.property_model.neural"
    representation: str
    n_atom_basis: int
    n_interactions: int
    n_rbf: int
    cutoff: float
    n_members: int
    max_epochs: int
    lr: float
    batch_size: int
    patience: int
    dipole_weight: float
    val_fraction: float


@dataclass(frozen=True)
class PropertyModelSettings(Section):
    """The bright state's property model (``excited.property_model``): ``kind`` krr (kernel ridge on
    descriptors, ``cv_folds``) or neural (``neural``); ``seed`` of either."""

    SECTION: ClassVar[str] = "excited.property_model"
    kind: str
    cv_folds: int
    seed: int
    neural: NeuralPropertySettings


@dataclass(frozen=True)
class ExcitedDynamicsSettings(MDSettings):
    """Bright-state MLP/MM replicas (``excited.dynamics``): ``relaxation`` fs, σ and forces eV/Å,
    ``ground_steps`` MD steps of the ground-state run before each replica (``initial: ground_state_md``)."""

    SECTION: ClassVar[str] = "excited.dynamics"
    n_replicas: int
    steps: int
    stride: int
    relaxation: float
    sigma_stop: float
    max_force: float
    seed: int
    initial: str
    ground_steps: int
    wigner_environment: str


@dataclass(frozen=True)
class ExcitedReferenceSettings(Section):
    """TDDFT reference check (``excited.reference``)."""

    SECTION: ClassVar[str] = "excited.reference"
    n_frames: int


@dataclass(frozen=True)
class SpectraSettings(Section):
    """Spectral grid and broadening (``excited.spectra``): energies and ``fwhm`` in eV."""

    SECTION: ClassVar[str] = "excited.spectra"
    e_min: float
    e_max: float
    n_points: int
    fwhm: float
    shape: str


@dataclass(frozen=True)
class ExcitedSettings(Section):
    """Excited states (``excited``)."""

    SECTION: ClassVar[str] = "excited"
    activate: bool
    n_label_frames: int
    absorption_samplers: tuple[str, ...]
    level: LevelSettings
    td: TDSettings
    training: ExcitedTrainingSettings
    al: ExcitedALSettings
    property_model: PropertyModelSettings
    dynamics: ExcitedDynamicsSettings
    reference: ExcitedReferenceSettings
    spectra: SpectraSettings


@dataclass(frozen=True)
class Settings(Section):
    """The whole validated config."""

    SECTION: ClassVar[str] = ""
    results_dir: str
    threads: ThreadsSettings
    system: SystemSettings
    sampling: SamplingSettings
    labeling: LabelingSettings
    test_set: TestSetSettings
    training: TrainingSettings
    al: ALSettings
    production: ProductionSettings
    excited: ExcitedSettings

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Settings":
        """Settings of a config already validated (defaults filled) by :func:`mlmm.config.validate_config`."""
        return cls.from_dict(config)
