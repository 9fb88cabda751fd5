"""Molecular dynamics: the OpenMM driver (force field + QM term as PythonForce) and the MLP/MM runs built on it."""
