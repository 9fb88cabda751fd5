"""QM engines: GFN2-xTB via tblite (sampling) and PySCF with MM point charges (labels)."""
