"""Stage functions of the active-learning rules: exploration walkers and selection."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from mlmm.al.selection import SelectionRecord, converged_before
from mlmm.frames import read_frames, write_frames
from mlmm.jobs import system_from_config
from mlmm.model.calibration import Calibration
from mlmm.records import Record, optional
from mlmm.seeds import derive_seed
from mlmm.settings import ALSettings, MetadynamicsSamplerSettings, SystemSettings

log = logging.getLogger(__name__)


@dataclass
class WalkerStats(Record):
    """``al/it{i}/walker{w}.json``: one exploration walker (σ in raw eV/Å, times in ps). ``kind``:
    ``thermal`` or ``metadynamics`` (biased along sampling.metadynamics's CVs), plus ``+uncertainty
    metadynamics`` / ``+sigma bias`` when al.bias is on, or ``stability probe`` (production
    conditions, :data:`PROBE`). ``sigma_stop`` is the raw σ it stopped at.

    A walker skipped because AL had converged has only ``skipped``, ``converged_at``, ``sigmas``
    (empty), ``breach`` and ``stop_reason`` (None).
    """

    skipped: bool
    converged_at: int | None = optional()
    seed: int | None = optional()
    temperature_K: float | None = optional()
    kind: str | None = optional()
    steps_requested: int | None = optional()
    steps_done: int | None = optional()
    time_ps: float | None = optional()
    stop_reason: str | None = None
    breach: bool = False
    sigmas: list[float] = field(default_factory=list)
    ms_per_step: float | None = optional()
    sigma_stop: float | None = optional()


#: ``WalkerStats.kind`` of the stability probe
PROBE = "stability probe"


@dataclass(frozen=True)
class StabilityProbe:
    """The production conditions the stability probe runs at: the ``production`` keys ``timestep``
    (fs), ``temperature`` (K), ``friction`` (1/fs) and the raw ``sigma_stop`` and ``max_force``
    (eV/Å). Only these are the explore rule's params, so a longer production does not rerun the loop."""

    timestep: float
    temperature: float
    friction: float
    sigma_stop: float
    max_force: float


@dataclass(frozen=True)
class TrustLevels:
    """The trust levels one AL iteration compares the mapped σ with (eV/Å).

    ``sigma_hi`` and ``sigma_stop`` are the larger of the configured levels and
    ``al.sigma_hi_relative`` / ``al.sigma_stop_relative`` × ``reference_error``, the exploring
    model's median max force error on the fixed test set (None without a calibration with
    errors: the configured levels as they are).
    """

    sigma_lo: float
    sigma_hi: float
    sigma_stop: float
    reference_error: float | None

    @classmethod
    def of(cls, calibration: Calibration, al: ALSettings) -> "TrustLevels":
        errors = calibration.max_force_error
        if not al.calibrated_thresholds or not errors:
            return cls(al.sigma_lo, al.sigma_hi, al.sigma_stop, None)
        reference = float(np.median(errors))
        return cls(al.sigma_lo, max(al.sigma_hi, al.sigma_hi_relative * reference),
                   max(al.sigma_stop, al.sigma_stop_relative * reference), reference)


def walker_conditions(al: ALSettings, walker: int, calibration_map: Calibration,
                      probe: StabilityProbe | None = None) -> dict[str, float]:
    """MD conditions of AL walker ``walker`` (keyword arguments of the MD runners: K, fs, 1/fs,
    steps, raw σ and max force in eV/Å): its temperature from ``al.temperatures`` (cycled) or
    ``al.temperature``, and the raw σ whose calibrated value (``calibration_map``) is the trust
    level ``sigma_stop``; with ``probe``, the stability probe's production conditions and raw
    ``probe.sigma_stop``."""
    if probe is not None:
        return {"temperature_K": probe.temperature, "timestep_fs": probe.timestep, "friction_per_fs": probe.friction,
                "steps": al.stability_steps, "sigma_stop": probe.sigma_stop, "max_force": probe.max_force}
    temperatures = al.temperatures or [al.temperature]
    return {"temperature_K": float(temperatures[walker % len(temperatures)]), "timestep_fs": al.timestep,
            "friction_per_fs": al.friction, "steps": al.steps,
            "sigma_stop": float(calibration_map.inverse(TrustLevels.of(calibration_map, al).sigma_stop)),
            "max_force": al.max_force}


def explore(
    structure: str,
    models: Sequence[str],
    previous_selection: Sequence[str],
    calibration: Sequence[str],
    iteration: int,
    walker: int,
    al: ALSettings,
    system_settings: SystemSettings,
    frames_out: str,
    device: str,
    metadynamics: MetadynamicsSamplerSettings | None = None,
    probe: StabilityProbe | None = None,
) -> WalkerStats:
    """One MLP/MM MD walker; records σ per saved frame and where/why it stopped (returned).

    Walker ``w`` runs at ``al.temperatures[w % len]`` (``al.temperature`` if that list is empty)
    with its own seed, from the input structure (Maxwell–Boltzmann momenta) or, with
    ``al.initial: wigner`` (bright-state walkers, excited.al), from a Wigner sample. The walker
    compares raw σ with the raw σ whose calibrated error is ``sigma_stop`` (the inverse of the map
    of :func:`sigma_calibration`; ``sigma_stop`` is that of :class:`TrustLevels`). The ensemble
    runs on ``device`` (the ``training.device`` setting).
    With ``al.stability_steps``, walker ``al.n_walkers`` is the stability probe: unbiased MD for
    that many steps at the production conditions of ``probe`` (raw σ against its ``sigma_stop``),
    which convergence requires to run to its end (:func:`select`).
    The last ``al.metadynamics_walkers`` walkers run well-tempered metadynamics with
    ``metadynamics`` (sampling.metadynamics: PLUMED input and biasfactor) and ``al.bias`` may bias
    every walker along its uncertainty (:mod:`mlmm.sampling.uncertainty`); PLUMED files go to
    ``<frames_out stem>_plumed/``.
    """
    done = converged_before(previous_selection)
    if done is not None:
        log.info("converged at iteration %d: walker skipped", done.converged_at)
        write_frames(frames_out, [])
        return WalkerStats(skipped=True, converged_at=done.converged_at)
    from mlmm.dynamics.mlp_md import run_mlp_md
    from mlmm.model.ensemble import Ensemble
    from mlmm.potentials import ensemble_potential

    is_probe = bool(al.stability_steps) and walker == al.n_walkers
    if is_probe and probe is None:
        raise ValueError(f"walker {walker}: the stability probe (al.stability_steps = {al.stability_steps}) "
                         "needs the production conditions (probe)")
    system = system_from_config(structure, system_settings)
    seed = derive_seed(al.seed, stream="al_walker", iteration=iteration, index=walker)
    md = walker_conditions(al, walker, sigma_calibration(calibration, al), probe if is_probe else None)
    temperature_K = md["temperature_K"]
    start = None
    if al.initial != "ground_state":
        from mlmm.excited.stages import initial_states

        starts, _ = initial_states(system, al.initial, n=1, temperature_K=temperature_K, seed=seed,
                                   environment=al.wigner_environment, embedding=system_settings.embedding)
        start = starts[0]
    plumed_dir = Path(frames_out).with_name(Path(frames_out).stem + "_plumed")
    bias = replace(al.bias, kind="none") if is_probe else al.bias
    context = {"temperature_K": temperature_K, "timestep_fs": md["timestep_fs"], "out_dir": plumed_dir}
    potential = ensemble_potential(system, Ensemble.load_for(list(models), device), embedding=system_settings.embedding,
                                   bias=bias, bias_context=context if bias.kind == "metadynamics" else None)
    along_cvs = not is_probe and walker >= al.n_walkers - al.metadynamics_walkers
    if along_cvs and metadynamics is None:
        raise ValueError(f"walker {walker}: al.metadynamics_walkers = {al.metadynamics_walkers} needs the "
                         "sampling.metadynamics settings (PLUMED input)")
    kind = PROBE if is_probe else ("metadynamics" if along_cvs else "thermal")
    kind += {"none": "", "sigma": " + sigma bias", "metadynamics": " + uncertainty metadynamics"}[bias.kind]
    md_kwargs = dict(
        **md,
        stride=al.stride,
        seed=seed,
        sampler="al_explore",
        iteration=iteration,
        source=f"{structure}:it{iteration}:walker{walker}",
        start=start,
    )
    try:
        if along_cvs:
            from mlmm.dynamics.metadynamics import run_mlp_metadynamics

            result = run_mlp_metadynamics(system, potential, plumed_input=metadynamics.plumed,
                                          biasfactor=metadynamics.biasfactor, out_dir=plumed_dir, **md_kwargs)
        else:
            result = run_mlp_md(system, potential, **md_kwargs)
    finally:
        finalize = getattr(getattr(potential, "qm_term", None), "finalize", None)
        if finalize is not None:
            finalize()  # flush the uncertainty metadynamics' HILLS
    write_frames(frames_out, result.frames)
    return WalkerStats(
        skipped=False,
        seed=seed,
        temperature_K=temperature_K,
        kind=kind,
        steps_requested=md["steps"],
        steps_done=result.steps_done,
        time_ps=result.steps_done * md["timestep_fs"] / 1000.0,
        stop_reason=result.stop_reason,
        breach=result.stop_reason is not None,
        sigmas=[float(v) for v in result.sigmas],
        ms_per_step=result.ms_per_step,
        sigma_stop=md["sigma_stop"],
    )


def sigma_calibration(calibration: Sequence[str], al: ALSettings) -> Calibration:
    """The map from raw ensemble σ to what the trust levels (eV/Å) are compared with.

    The identity unless ``al.calibrated_thresholds`` is on and the exploring model has a
    calibration (``calibration``: its calibration.json, ground-state loop only); then that
    calibration's map σ → expected max force error (eV/Å), so the thresholds mean expected
    errors instead of raw committee spreads. A map that is not strictly increasing is an error
    naming the file.
    """
    if not al.calibrated_thresholds or not calibration:
        return Calibration.identity()
    result = Calibration.from_json(calibration[0])
    try:
        result.sigma_map()
    except ValueError as err:
        raise ValueError(f"{calibration[0]}: calibration {err}") from None
    return result


def select(
    frames: Sequence[str],
    stats: Sequence[str],
    previous_selection: Sequence[str],
    evaluations: Sequence[str],
    calibration: Sequence[str],
    iteration: int,
    al: ALSettings,
    selected_out: str,
    property_model: str | None = None,
    property_kind: str | None = None,
    property_sigma_ev: float | None = None,
) -> SelectionRecord:
    """Trust window + diversity over all walkers; writes the selected Frames, returns the selection record.

    The walkers' raw σ go through the map of :func:`sigma_calibration` (expected max force errors,
    eV/Å, when ``al.calibrated_thresholds``) before they meet the :class:`TrustLevels`.
    With a bright-state ``property_model`` (``property_kind`` krr or neural) and
    ``property_sigma_ev``, a frame whose committee σ of the bright excitation energy exceeds
    ``property_sigma_ev`` (eV) is a candidate too, whatever its force σ below ``sigma_hi``: the
    spectra need ΔE where the forces are already learnt.

    Convergence (the flag later iterations obey): the fraction of explored frames with σ below
    ``sigma_lo`` reaches ``converged_fraction``, no walker breached, the test-set error of the
    models trained so far (``evaluations``, oldest first) stopped improving, the stability
    probe (if any) ran to its end, and (with a property model) no frame's ΔE σ exceeded
    ``property_sigma_ev``.
    """
    from mlmm.al.selection import is_converged, select_frames, validation_stalled
    from mlmm.model.stages import EnsembleEvaluation

    done = converged_before(previous_selection)
    all_frames = [f for path in frames for f in read_frames(path)]
    walker_stats = [WalkerStats.from_json(p) for p in stats]
    calibration_map = sigma_calibration(calibration, al)
    sigmas = np.asarray(calibration_map.apply(np.array([s for st in walker_stats for s in st.sigmas], float)))
    levels = TrustLevels.of(calibration_map, al)
    used_map = {"sigma_scale": calibration_map.scale, "map_sigma": calibration_map.map_sigma,
                "map_error": calibration_map.map_error}
    if done is not None:
        write_frames(selected_out, [])
        return SelectionRecord(iteration=iteration, n_explored=len(all_frames), **used_map, converged=True,
                               converged_at=done.converged_at, n_selected=0,
                               reason=f"converged at iteration {done.converged_at}")
    property_sigmas = None
    if property_model is not None and property_sigma_ev is not None:
        from mlmm.excited.stages import property_predictions

        property_sigmas = np.asarray(property_predictions(all_frames, property_model, str(property_kind))[2], float) \
            if all_frames else np.zeros(0)
    uncertain_property = None if property_sigmas is None else property_sigmas > property_sigma_ev
    picked, counts = select_frames(
        all_frames, sigmas, sigma_lo=levels.sigma_lo, sigma_hi=levels.sigma_hi, max_selected=al.max_selected,
        also=uncertain_property,
    )
    breach = any(st.breach for st in walker_stats)
    test_maes = [EnsembleEvaluation.from_json(p).force_mae_qm for p in evaluations]
    stalled, validation_note = validation_stalled(test_maes, al.validation_tolerance)
    probes = [st for st in walker_stats if st.kind == PROBE]
    stable = all(st.stop_reason is None for st in probes)
    property_settled = uncertain_property is None or not uncertain_property.any()
    converged = is_converged(counts, breach, al.converged_fraction, stalled) and stable and property_settled
    if converged:
        picked = []
    selected = [all_frames[i] for i in picked]
    for frame in selected:
        frame.info["iteration"] = iteration
    write_frames(selected_out, selected)
    fraction = counts.accurate / counts.total if counts.total else 0.0
    record = SelectionRecord(
        iteration=iteration,
        n_explored=len(all_frames),
        **used_map,
        converged=converged,
        converged_at=iteration if converged else None,
        n_selected=len(selected),
        reason="converged" if converged else ("selected" if selected else "no frame in the trust window"),
        accurate=counts.accurate,
        candidate=counts.candidate,
        failed=counts.failed,
        fraction_accurate=fraction,
        criteria={
            "fraction_accurate": {"met": fraction >= al.converged_fraction, "value": fraction, "target": al.converged_fraction},
            "no_breach": {"met": not breach},
            "validation": {"met": stalled, "note": validation_note},
            **({"production_stable": {"met": stable, "time_ps": probes[0].time_ps, "stop_reason": probes[0].stop_reason}}
               if probes else {}),
            **({"property_sigma": {"met": property_settled, "n_above": int(uncertain_property.sum()),
                                   "target_ev": property_sigma_ev}} if uncertain_property is not None else {}),
        },
        trust_levels={"sigma_lo": levels.sigma_lo, "sigma_hi": levels.sigma_hi, "sigma_stop": levels.sigma_stop,
                      "reference_error": levels.reference_error},
        any_breach=breach,
        validation_force_mae_qm=test_maes,
        walkers=[{k: getattr(st, k) for k in ("kind", "temperature_K", "steps_done", "steps_requested", "time_ps", "stop_reason")}
                 for st in walker_stats],
        sigma_max=float(sigmas.max()) if len(sigmas) else None,
        sigma_mean=float(sigmas.mean()) if len(sigmas) else None,
        **({"property_candidate": int(uncertain_property.sum()), "property_sigma_ev": property_sigma_ev,
            "property_sigma_max_ev": float(property_sigmas.max()) if len(property_sigmas) else None}
           if uncertain_property is not None else {}),
    )
    log.info("selection: %s", record)
    return record
