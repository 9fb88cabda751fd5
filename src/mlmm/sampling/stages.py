"""Stage functions of the sampling rules (paths in, paths out)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from mlmm.frames import read_frames, write_frames
from mlmm.jobs import system_from_config
from mlmm.records import Record, extra
from mlmm.settings import (
    AdaptiveSettings,
    MetadynamicsSamplerSettings,
    NormalModesSettings,
    PCASettings,
    SystemSettings,
    WignerSettings,
    XtbMDSettings,
)

log = logging.getLogger(__name__)


@dataclass
class SamplerStats(Record):
    """``sampling/{sampler}/stats.json``: frames and wall time (s) of one sampler, plus the
    sampler's own statistics (``details``, stored flat beside the common keys)."""

    sampler: str
    n_frames: int
    wall_s: float
    details: dict[str, Any] = extra()


@dataclass
class SamplerTotals(Record):
    """One sampler's line of the sampling summary."""

    n_frames: int
    wall_s: float


@dataclass
class SamplingSummary(Record):
    """``sampling/summary.json``: per active sampler its frames and wall time (s), and their total."""

    samplers: dict[str, SamplerTotals]
    n_frames: int

    def to_dict(self) -> dict[str, Any]:
        return {"samplers": {k: v.to_dict() for k, v in self.samplers.items()}, "n_frames": self.n_frames}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "record") -> "SamplingSummary":
        try:
            return cls({k: SamplerTotals.from_dict(v, source) for k, v in data["samplers"].items()}, data["n_frames"])
        except KeyError as exc:
            raise ValueError(f"{source}: SamplingSummary record lacks the key {exc.args[0]!r}") from None


def sample_xtb_md(structure: str, system: SystemSettings, sampler: XtbMDSettings, frames_out: str) -> SamplerStats:
    """GFN2-xTB/MM Langevin sampling (see :func:`mlmm.sampling.md_sampler.sample_xtb_md`)."""
    from mlmm.sampling.md_sampler import sample_xtb_md as run

    t0 = time.perf_counter()
    frames = run(system_from_config(structure, system), sampler, system.embedding, log=log)
    seconds = time.perf_counter() - t0
    write_frames(frames_out, frames)
    n_steps = sampler.equilibration_steps + sampler.n_frames * sampler.stride
    return SamplerStats("xtb_md", len(frames), seconds, {"md_steps": n_steps, "ms_per_step": 1e3 * seconds / n_steps})


def collect_frames(inputs: Sequence[str], frames_out: str) -> None:
    """Concatenate Frame files (the iteration-0 dataset from all active samplers)."""
    frames = [f for path in inputs for f in read_frames(path)]
    log.info("collected %d frames from %s", len(frames), list(inputs))
    write_frames(frames_out, frames)


def _run_sampler(sampler: str, run: Callable[[], tuple[list, dict]], report: Callable[[dict], None],
                 frames_out: str) -> SamplerStats:
    """Time ``run`` (→ Frames and the sampler's statistics), pass the statistics to ``report`` (its
    plot and side files), write the Frames; the stats record with n_frames and wall_s (s)."""
    t0 = time.perf_counter()
    frames, stats = run()
    seconds = time.perf_counter() - t0
    report(stats)
    write_frames(frames_out, frames)
    log.info("%s: %d frames in %.1f s", sampler, len(frames), seconds)
    return SamplerStats(sampler, len(frames), seconds, dict(stats))


def sample_metadynamics(structure: str, system: SystemSettings, sampler: MetadynamicsSamplerSettings, frames_out: str,
                        plot_out: str) -> SamplerStats:
    """Well-tempered PLUMED metadynamics on xTB/MM; HILLS, COLVAR, fes.dat next to the frames."""
    from pathlib import Path

    from mlmm.engines.plumed import read_plumed_table
    from mlmm.sampling.metadynamics import sample_metadynamics as run, sum_hills
    from mlmm.sampling.plots import plot_metadynamics

    out_dir = Path(frames_out).parent
    return _run_sampler(
        "metadynamics", lambda: run(system_from_config(structure, system), sampler, system.embedding, out_dir, log=log),
        lambda _: plot_metadynamics(read_plumed_table(out_dir / "COLVAR"),
                                    sum_hills(out_dir / "HILLS", out_dir / "fes.dat"), plot_out),
        frames_out)


def _references(path: str, n_max: int = 50) -> list:
    """Environment snapshots (Frames) for re-embedding, at most ``n_max`` spread over the file."""
    import numpy as np

    frames = read_frames(path)
    if len(frames) > n_max:
        frames = [frames[i] for i in np.linspace(0, len(frames) - 1, n_max).round().astype(int)]
    return frames


def _harmonic_sampler(sampler: str, run: Callable, title: str, structure: str, environment_frames: str,
                      system: SystemSettings, settings: NormalModesSettings | WignerSettings, frames_out: str,
                      plot_out: str) -> SamplerStats:
    """A sampler of the QM region's harmonic modes (``run``: normal modes or Wigner) re-embedded in
    the environment snapshots; plots the harmonic (and, with momenta, kinetic) energy distribution."""
    from mlmm.sampling.plots import plot_energy_distribution

    return _run_sampler(
        sampler, lambda: run(system_from_config(structure, system), _references(environment_frames), settings,
                             system.embedding, log=log),
        lambda stats: plot_energy_distribution(stats["harmonic_energy_ev"], stats["expected_mean_harmonic_ev"], title,
                                               plot_out, kinetic_ev=stats.get("kinetic_energy_ev")),
        frames_out)


def sample_normal_modes(structure: str, environment_frames: str, system: SystemSettings, sampler: NormalModesSettings,
                        frames_out: str, plot_out: str) -> SamplerStats:
    """Normal-mode sampling of the QM region, re-embedded in the given environment snapshots."""
    from mlmm.sampling.normal_modes import sample_normal_modes as run

    return _harmonic_sampler("normal_modes", run, f"normal modes ({sampler.distribution}, {sampler.temperature:g} K)",
                             structure, environment_frames, system, sampler, frames_out, plot_out)


def sample_wigner(structure: str, environment_frames: str, system: SystemSettings, sampler: WignerSettings,
                  frames_out: str, plot_out: str) -> SamplerStats:
    """Wigner sampling (positions and momenta) of the QM region, re-embedded in environment snapshots."""
    from mlmm.sampling.wigner import sample_wigner as run

    return _harmonic_sampler("wigner", run, f"Wigner ({sampler.temperature:g} K)", structure, environment_frames, system,
                             sampler, frames_out, plot_out)


def sample_pca(trajectory_frames: str, sampler: PCASettings, frames_out: str, plot_out: str) -> SamplerStats:
    """PCA-based sampling along the leading components of a sampler's trajectory Frames."""
    from mlmm.sampling.pca import sample_pca as run
    from mlmm.sampling.plots import plot_pca

    return _run_sampler("pca", lambda: run(read_frames(trajectory_frames), sampler, log=log),
                        lambda stats: plot_pca(stats["trajectory_projections"], stats["sample_projections"], plot_out),
                        frames_out)


def sample_adaptive(structure: str, system: SystemSettings, sampler: AdaptiveSettings, frames_out: str,
                    plot_out: str) -> SamplerStats:
    """Adaptive sampling: short xTB/MM runs restarted from the least-visited CV bins."""
    from mlmm.sampling.adaptive import sample_adaptive as run
    from mlmm.sampling.plots import plot_adaptive

    return _run_sampler("adaptive", lambda: run(system_from_config(structure, system), sampler, system.embedding, log=log),
                        lambda stats: plot_adaptive(stats["coverage_per_round"], stats["cv_values"], stats["picked"],
                                                    plot_out),
                        frames_out)


def summarize_samplers(stats: Sequence[str]) -> SamplingSummary:
    """Per active sampler: frames and wall time (for results/summary.json)."""
    table = {}
    for path in stats:
        s = SamplerStats.from_json(path)
        table[s.sampler] = SamplerTotals(s.n_frames, s.wall_s)
    summary = SamplingSummary(table, sum(v.n_frames for v in table.values()))
    log.info("samplers: %s", summary.to_dict())
    return summary
