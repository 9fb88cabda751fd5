"""Figures and tables for `snakemake --report`."""
