"""Molecular dynamics: the generic Langevin driver and the MLP/MM runs built on it."""
