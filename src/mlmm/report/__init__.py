"""Overview figures and tables for `snakemake --report` (σ per AL iteration, AL table)."""
