"""Spectra from ensembles of vertical excitations: broadening, absorption, emission, comparison."""
