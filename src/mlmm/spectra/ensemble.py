"""Absorption and emission spectra from ensembles of vertical transitions; comparison metrics.

Absorption (nuclear-ensemble approach): every ground-state/Wigner frame contributes all of its
computed states, σ(E) ∝ (1/N) Σ_frames Σ_states f g(E − ΔE), in oscillator strength per eV per
frame. Emission: every excited-state trajectory frame contributes its bright state with weight
f·ΔE² (spontaneous emission rate ∝ ν²·f), I(E) ∝ (1/N) Σ_frames f ΔE² g(E − ΔE), in eV² per eV
per frame. ΔE in eV; g is a unit-area line shape (:mod:`mlmm.spectra.broadening`).
"""

from __future__ import annotations

import csv
import os
from typing import Any, Sequence

import numpy as np

from mlmm.frames import atomic_write
from mlmm.spectra.broadening import broaden, ev_to_nm, to_wavelength_axis


def energy_grid(e_min_ev: float, e_max_ev: float, n_points: int) -> np.ndarray:
    """Uniform energy grid (eV), both ends included."""
    if not 0 < e_min_ev < e_max_ev or n_points < 3:
        raise ValueError(f"need 0 < e_min < e_max and n_points >= 3, got {e_min_ev}, {e_max_ev}, {n_points}")
    return np.linspace(e_min_ev, e_max_ev, n_points)


def absorption_spectrum(
    excitation_energies_ev: Sequence[Sequence[float]],
    oscillator_strengths: Sequence[Sequence[float]],
    grid_ev: np.ndarray,
    fwhm_ev: float,
    shape: str = "gaussian",
) -> np.ndarray:
    """Nuclear-ensemble absorption spectrum (f per eV per frame) from per-frame states."""
    n = len(excitation_energies_ev)
    if n == 0:
        raise ValueError("absorption spectrum of an empty ensemble")
    e = np.concatenate([np.asarray(x, float).reshape(-1) for x in excitation_energies_ev])
    f = np.concatenate([np.asarray(x, float).reshape(-1) for x in oscillator_strengths])
    return broaden(e, f, grid_ev, fwhm_ev, shape) / n


def emission_spectrum(
    bright_energies_ev: Sequence[float],
    bright_oscillator_strengths: Sequence[float],
    grid_ev: np.ndarray,
    fwhm_ev: float,
    shape: str = "gaussian",
) -> np.ndarray:
    """Emission spectrum (f·ΔE² per eV per frame, eV²/eV) from the bright state of each frame."""
    e = np.asarray(bright_energies_ev, float).reshape(-1)
    f = np.asarray(bright_oscillator_strengths, float).reshape(-1)
    if len(e) == 0:
        raise ValueError("emission spectrum of an empty ensemble")
    return broaden(e, f * e**2, grid_ev, fwhm_ev, shape) / len(e)


def peak_position(grid_ev: np.ndarray, spectrum: np.ndarray) -> float:
    """Energy (eV) of the spectrum's maximum, refined by a parabola through the three top points."""
    y = np.asarray(spectrum, float)
    x = np.asarray(grid_ev, float)
    i = int(np.argmax(y))
    if 0 < i < len(y) - 1:
        denom = y[i - 1] - 2 * y[i] + y[i + 1]
        if denom < 0:
            shift = 0.5 * (y[i - 1] - y[i + 1]) / denom
            return float(x[i] + shift * (x[i + 1] - x[i]))
    return float(x[i])


def spectral_overlap(grid_ev: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Overlap ∫ min(â, b̂) dE of the two spectra normalised to unit area: 1 identical, 0 disjoint."""
    x = np.asarray(grid_ev, float)
    area_a, area_b = np.trapezoid(a, x), np.trapezoid(b, x)
    if area_a <= 0 or area_b <= 0:
        raise ValueError("spectral overlap needs two spectra with positive area")
    return float(np.trapezoid(np.minimum(np.asarray(a) / area_a, np.asarray(b) / area_b), x))


def mean_energy(grid_ev: np.ndarray, spectrum: np.ndarray) -> float:
    """Intensity-weighted mean energy (eV, first moment) of a spectrum on an energy grid."""
    x, y = np.asarray(grid_ev, float), np.asarray(spectrum, float)
    area = np.trapezoid(y, x)
    if area <= 0:
        raise ValueError("mean energy of a spectrum needs a positive area")
    return float(np.trapezoid(x * y, x) / area)


def compare_spectra(grid_ev: np.ndarray, test: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Peak shift (test − reference, eV and nm), shift of the intensity-weighted mean energy (eV;
    with few frames the peak is set by two or three of them, the mean by all) and unit-area
    overlap of two spectra on one grid."""
    p_test, p_ref = peak_position(grid_ev, test), peak_position(grid_ev, reference)
    m_test, m_ref = mean_energy(grid_ev, test), mean_energy(grid_ev, reference)
    return {
        "peak_ev": p_test,
        "reference_peak_ev": p_ref,
        "peak_shift_ev": p_test - p_ref,
        "peak_shift_nm": float(ev_to_nm(p_test) - ev_to_nm(p_ref)),
        "mean_ev": m_test,
        "reference_mean_ev": m_ref,
        "mean_shift_ev": m_test - m_ref,
        "overlap": spectral_overlap(grid_ev, test, reference),
    }


def stokes_shift(grid_ev: np.ndarray, absorption: np.ndarray, emission: np.ndarray) -> dict[str, float]:
    """Stokes shift = absorption peak − emission peak (eV, nm and cm⁻¹)."""
    e_abs, e_em = peak_position(grid_ev, absorption), peak_position(grid_ev, emission)
    return {
        "absorption_peak_ev": e_abs,
        "emission_peak_ev": e_em,
        "absorption_peak_nm": float(ev_to_nm(e_abs)),
        "emission_peak_nm": float(ev_to_nm(e_em)),
        "stokes_shift_ev": e_abs - e_em,
        "stokes_shift_nm": float(ev_to_nm(e_em) - ev_to_nm(e_abs)),
        "stokes_shift_cm-1": (e_abs - e_em) * 8065.543937,
    }


def write_spectrum_csv(path: str | os.PathLike, grid_ev: np.ndarray, columns: dict[str, np.ndarray]) -> None:
    """CSV with energy (eV), wavelength (nm) and, per named spectrum, its density per eV and per nm."""
    grid = np.asarray(grid_ev, float)
    lam = ev_to_nm(grid)
    header = ["energy_ev", "wavelength_nm"]
    data = [grid, lam]
    for name, values in columns.items():
        _, per_nm_sorted = to_wavelength_axis(grid, values)
        per_nm = per_nm_sorted[np.argsort(np.argsort(lam))]  # back to the energy-grid order
        header += [f"{name}_per_ev", f"{name}_per_nm"]
        data += [np.asarray(values, float), per_nm]

    def writer(tmp: str) -> None:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            for row in np.column_stack(data):
                w.writerow([f"{v:.8g}" for v in row])

    atomic_write(path, writer)


def read_spectrum_csv(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Columns of a spectrum CSV written by :func:`write_spectrum_csv`."""
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], np.array(rows[1:], float)
    return {name: body[:, k] for k, name in enumerate(header)}


def plot_spectra(path: str | os.PathLike, grid_ev: np.ndarray, spectra: dict[str, np.ndarray], title: str,
                 markers: dict[str, float] | None = None) -> None:
    """PNG with the spectra (each scaled to its maximum) on the energy and the wavelength axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_e, ax_l) = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, y in spectra.items():
        y = np.asarray(y, float)
        scale = y.max() if y.max() > 0 else 1.0
        ax_e.plot(grid_ev, y / scale, label=name)
        lam, per_nm = to_wavelength_axis(grid_ev, y)
        ax_l.plot(lam, per_nm / (per_nm.max() if per_nm.max() > 0 else 1.0), label=name)
    for name, e in (markers or {}).items():
        ax_e.axvline(e, ls=":", lw=1, color="grey")
        ax_l.axvline(float(ev_to_nm(e)), ls=":", lw=1, color="grey")
    ax_e.set_xlabel("energy / eV")
    ax_l.set_xlabel("wavelength / nm")
    for ax in (ax_e, ax_l):
        ax.set_ylabel("intensity (normalised)")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()

    def writer(tmp: str) -> None:
        fig.savefig(tmp, dpi=110, format="png")

    atomic_write(path, writer)
    plt.close(fig)


def spectrum_summary(grid_ev: np.ndarray, spectrum: np.ndarray, total_intensity: float | None = None) -> dict[str, Any]:
    """Peak (eV, nm) and integral of one spectrum; with the ``total_intensity`` of its lines (the
    integral over all energies), also the fraction of it that falls outside the grid."""
    p = peak_position(grid_ev, spectrum)
    integral = float(np.trapezoid(spectrum, grid_ev))
    out = {"peak_ev": p, "peak_nm": float(ev_to_nm(p)), "integral": integral}
    if total_intensity is not None and total_intensity > 0:
        out["fraction_outside_grid"] = max(0.0, 1.0 - integral / total_intensity)
    return out
