"""Line shapes and the energy ↔ wavelength axis conversion.

Every line shape is normalised to unit area on the energy axis (1/eV), so a broadened
stick spectrum integrates to the total stick intensity. Converting a spectral density from
the energy to the wavelength axis multiplies by the Jacobian |dE/dλ| = hc/λ² = E²/hc, which
keeps the integral (the total intensity) unchanged.
"""

from __future__ import annotations

import numpy as np

#: hc in eV·nm (CODATA 2018): λ[nm] = HC_EV_NM / E[eV].
HC_EV_NM: float = 1239.841984
LINE_SHAPES: tuple[str, ...] = ("gaussian", "lorentzian")


def line_shape(x_ev: np.ndarray, fwhm_ev: float, shape: str = "gaussian") -> np.ndarray:
    """Unit-area line shape (1/eV) at offsets ``x_ev`` from the line centre, full width ``fwhm_ev``."""
    if fwhm_ev <= 0:
        raise ValueError(f"fwhm must be > 0 eV, got {fwhm_ev}")
    x = np.asarray(x_ev, float)
    if shape == "gaussian":
        sigma = fwhm_ev / (2.0 * np.sqrt(2.0 * np.log(2.0)))
        return np.exp(-0.5 * (x / sigma) ** 2) / (sigma * np.sqrt(2.0 * np.pi))
    if shape == "lorentzian":
        gamma = fwhm_ev / 2.0
        return gamma / (np.pi * (x**2 + gamma**2))
    raise ValueError(f"unknown line shape {shape!r}; expected one of {LINE_SHAPES}")


def broaden(
    centres_ev: np.ndarray, intensities: np.ndarray, grid_ev: np.ndarray, fwhm_ev: float, shape: str = "gaussian"
) -> np.ndarray:
    """Σ_i I_i g(E - E_i) on ``grid_ev``: a spectral density whose integral is Σ_i I_i (up to tails off the grid)."""
    c = np.asarray(centres_ev, float).reshape(-1)
    w = np.asarray(intensities, float).reshape(-1)
    if c.shape != w.shape:
        raise ValueError(f"{c.shape[0]} line centres but {w.shape[0]} intensities")
    grid = np.asarray(grid_ev, float)
    out = np.zeros_like(grid)
    for start in range(0, len(c), 2048):  # bounded memory for large ensembles
        out += line_shape(grid[:, None] - c[None, start:start + 2048], fwhm_ev, shape) @ w[start:start + 2048]
    return out


def ev_to_nm(energy_ev: np.ndarray | float) -> np.ndarray | float:
    """Photon wavelength (nm) of a photon energy (eV)."""
    return HC_EV_NM / np.asarray(energy_ev, float)


def nm_to_ev(wavelength_nm: np.ndarray | float) -> np.ndarray | float:
    """Photon energy (eV) of a wavelength (nm)."""
    return HC_EV_NM / np.asarray(wavelength_nm, float)


def to_wavelength_axis(grid_ev: np.ndarray, density_per_ev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(λ in nm ascending, density per nm) of a spectral density given per eV on ``grid_ev``.

    I_λ(λ) = I_E(E(λ)) · |dE/dλ| = I_E · E²/hc, so ∫ I_λ dλ = ∫ I_E dE.
    """
    e = np.asarray(grid_ev, float)
    if np.any(e <= 0):
        raise ValueError("the energy grid must be positive for a wavelength axis")
    lam = ev_to_nm(e)
    dens = np.asarray(density_per_ev, float) * e**2 / HC_EV_NM
    order = np.argsort(lam)
    return lam[order], dens[order]
