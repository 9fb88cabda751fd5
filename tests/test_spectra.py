"""Spectra: broadening conserves intensity, wavelength axis, peaks, overlap, Stokes shift, CSV."""

from __future__ import annotations

import numpy as np
import pytest

from mlmm.spectra.broadening import HC_EV_NM, broaden, ev_to_nm, line_shape, nm_to_ev, to_wavelength_axis
from mlmm.spectra.ensemble import (
    absorption_spectrum,
    compare_spectra,
    emission_spectrum,
    energy_grid,
    mean_energy,
    peak_position,
    read_spectrum_csv,
    spectral_overlap,
    spectrum_summary,
    stokes_shift,
    write_spectrum_csv,
)


@pytest.mark.parametrize("shape", ["gaussian", "lorentzian"])
def test_broadening_integrates_to_the_total_intensity(shape):
    rng = np.random.default_rng(3)
    centres = rng.uniform(3.0, 5.0, 40)
    weights = rng.uniform(0.0, 1.0, 40)
    grid = np.linspace(1.0, 7.0, 60001)
    spec = broaden(centres, weights, grid, 0.2, shape)
    if shape == "gaussian":  # tails beyond 2 eV (> 8 sigma) are negligible
        expected = weights.sum()
    else:  # Lorentzian tails off the grid are not: the exact area on [1, 7] eV is Σ w (atan b - atan a)/π
        gamma = 0.1
        inside = (np.arctan((7.0 - centres) / gamma) - np.arctan((1.0 - centres) / gamma)) / np.pi
        expected = weights @ inside
        assert expected < 0.98 * weights.sum()
    assert np.trapezoid(spec, grid) == pytest.approx(expected, rel=1e-7)


def test_line_shapes_have_the_requested_fwhm_and_unit_area():
    x = np.linspace(-2, 2, 400001)
    for shape in ("gaussian", "lorentzian"):
        g = line_shape(x, 0.3, shape)
        above = x[g >= g.max() / 2]
        assert above[-1] - above[0] == pytest.approx(0.3, abs=2e-5)
    assert np.trapezoid(line_shape(x, 0.3, "gaussian"), x) == pytest.approx(1.0, abs=1e-10)
    with pytest.raises(ValueError):
        line_shape(x, 0.3, "voigt")


def test_wavelength_axis_conversion():
    assert HC_EV_NM == pytest.approx(6.62607015e-34 * 299792458 / 1.602176634e-19 * 1e9, rel=1e-9)
    assert ev_to_nm(1.0) == pytest.approx(1239.84198, abs=1e-4)
    assert ev_to_nm(3.0996) == pytest.approx(400.0, abs=0.01)
    assert nm_to_ev(ev_to_nm(2.5)) == pytest.approx(2.5)
    grid = np.linspace(1.5, 6.0, 20001)
    spec = broaden([3.0], [1.0], grid, 0.1)
    lam, per_nm = to_wavelength_axis(grid, spec)
    assert np.all(np.diff(lam) > 0)
    # the Jacobian keeps the integral: ∫ I dλ = ∫ I dE
    assert np.trapezoid(per_nm, lam) == pytest.approx(np.trapezoid(spec, grid), rel=1e-6)
    # narrow line: its maximum sits at hc/E0 on the wavelength axis too (Jacobian shifts it a little)
    assert lam[np.argmax(per_nm)] == pytest.approx(ev_to_nm(3.0), abs=1.0)


def test_absorption_is_the_ensemble_mean_and_emission_weights_f_de2():
    grid = energy_grid(1.0, 8.0, 7001)
    e = [[3.0, 5.0], [3.2, 5.1]]
    f = [[0.1, 0.5], [0.2, 0.4]]
    absorption = absorption_spectrum(e, f, grid, 0.2)
    assert np.trapezoid(absorption, grid) == pytest.approx((0.1 + 0.5 + 0.2 + 0.4) / 2, rel=1e-6)
    emission = emission_spectrum([2.0, 4.0], [0.5, 0.5], grid, 0.1)
    assert np.trapezoid(emission, grid) == pytest.approx((0.5 * 4 + 0.5 * 16) / 2, rel=1e-6)
    # the line at 4 eV is 4x the one at 2 eV (ΔE² weighting)
    assert emission[np.argmin(abs(grid - 4.0))] / emission[np.argmin(abs(grid - 2.0))] == pytest.approx(4.0, rel=1e-6)


def test_peak_shift_overlap_and_stokes_shift():
    grid = energy_grid(1.0, 6.0, 5001)
    a = broaden([3.0], [1.0], grid, 0.3)
    b = broaden([3.25], [2.0], grid, 0.3)
    assert peak_position(grid, a) == pytest.approx(3.0, abs=1e-6)
    cmp = compare_spectra(grid, b, a)
    assert cmp["peak_shift_ev"] == pytest.approx(0.25, abs=1e-5)
    assert cmp["peak_shift_nm"] < 0
    assert cmp["mean_shift_ev"] == pytest.approx(0.25, abs=1e-4)  # a pure shift moves the first moment alike
    two = broaden([2.0, 4.0], [1.0, 3.0], grid, 0.3)
    assert mean_energy(grid, two) == pytest.approx((2.0 + 3 * 4.0) / 4, abs=1e-4)
    assert spectral_overlap(grid, a, a * 3.0) == pytest.approx(1.0, abs=1e-9)
    # two unit-area Gaussians σ apart... here 0.25 eV at FWHM 0.3: overlap = erfc(d/(2√2σ))
    from math import erfc, log, sqrt

    sigma = 0.3 / (2 * sqrt(2 * log(2)))
    assert cmp["overlap"] == pytest.approx(erfc(0.25 / (2 * sqrt(2) * sigma)), abs=1e-5)
    far = broaden([5.5], [1.0], grid, 0.1)
    assert spectral_overlap(grid, a, far) < 1e-6
    st = stokes_shift(grid, b, a)
    assert st["stokes_shift_ev"] == pytest.approx(0.25, abs=1e-5)
    assert st["stokes_shift_nm"] > 0 and st["stokes_shift_cm-1"] == pytest.approx(0.25 * 8065.544, rel=1e-4)


def test_summary_reports_the_intensity_outside_the_grid():
    grid = energy_grid(1.0, 6.0, 2001)
    inside = broaden([3.0], [2.0], grid, 0.2)
    assert spectrum_summary(grid, inside, 2.0)["fraction_outside_grid"] == pytest.approx(0.0, abs=1e-6)
    half_out = broaden([3.0, 0.3], [1.0, 1.0], grid, 0.2)  # the second line lies below the grid
    assert spectrum_summary(grid, half_out, 2.0)["fraction_outside_grid"] == pytest.approx(0.5, abs=1e-4)
    assert "fraction_outside_grid" not in spectrum_summary(grid, inside)


def test_spectrum_csv_round_trip(tmp_path):
    grid = energy_grid(2.0, 6.0, 401)
    spec = broaden([4.0], [1.0], grid, 0.3)
    path = tmp_path / "s.csv"
    write_spectrum_csv(path, grid, {"absorption": spec})
    cols = read_spectrum_csv(path)
    np.testing.assert_allclose(cols["energy_ev"], grid)
    np.testing.assert_allclose(cols["wavelength_nm"], HC_EV_NM / grid, rtol=1e-7)
    np.testing.assert_allclose(cols["absorption_per_ev"], spec, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(cols["absorption_per_nm"], spec * grid**2 / HC_EV_NM, rtol=1e-6, atol=1e-12)
