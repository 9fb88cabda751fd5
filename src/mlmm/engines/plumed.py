"""Finding a PLUMED kernel and its command-line tool.

The kernel (``libplumedKernel.so``) is looked up in this order:

1. the environment variable ``PLUMED_KERNEL`` (must name an existing file),
2. the kernel bundled in the ``plumed`` Python module of the ``hillclimber`` wheel
   (``<site-packages>/plumed/_lib/lib/libplumedKernel.so``),
3. ``$CONDA_PREFIX/lib/libplumedKernel.so`` (conda-forge ``plumed``).

Anything else is one :class:`PlumedNotFound` error that lists the places tried. The
``plumed`` executable (for ``sum_hills``) is taken from next to the kernel (``../bin/plumed``)
or from ``PATH``; it gets ``PLUMED_KERNEL``, ``PLUMED_ROOT`` and ``LD_LIBRARY_PATH`` set so
the bundled binary finds its own library.

Biased runs (xTB/MM sampling and MLP/MM production) share :func:`prepare_plumed_input`,
:func:`plumed_run_dir` and :class:`PlumedBias`: PLUMED runs inside the output folder, so the
input's relative ``FILE=`` names (HILLS, COLVAR) land there. :class:`PlumedBias` drives the kernel
through the ``plumed`` Python wrapper from the OpenMM MD (:mod:`mlmm.dynamics.md`) in PLUMED's own
units, which are OpenMM's: nm, kJ/mol, ps, atomic masses, e.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

if TYPE_CHECKING:  # numpy is imported where needed: finding a kernel must work without site-packages
    import numpy as np

KERNEL_NAME = "libplumedKernel.so"


class PlumedNotFound(RuntimeError):
    """No usable PLUMED kernel or executable."""


def _bundled_lib_dir() -> Path | None:
    """``plumed/_lib`` of the hillclimber wheel, located without importing the module."""
    spec = importlib.util.find_spec("plumed")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "_lib"


def kernel_candidates() -> list[tuple[str, Path | None]]:
    """(where, path) in search order; path None where that source is not set/installed."""
    env = os.environ.get("PLUMED_KERNEL")
    lib = _bundled_lib_dir()
    conda = os.environ.get("CONDA_PREFIX")
    return [
        ("environment variable PLUMED_KERNEL", Path(env) if env else None),
        ("hillclimber wheel (plumed/_lib/lib)", lib / "lib" / KERNEL_NAME if lib else None),
        ("$CONDA_PREFIX/lib", Path(conda) / "lib" / KERNEL_NAME if conda else None),
    ]


def find_plumed_kernel() -> Path:
    """Path of the PLUMED kernel (see module docstring); sets ``PLUMED_KERNEL`` to it."""
    tried = []
    for where, path in kernel_candidates():
        if path is not None and path.is_file():
            os.environ["PLUMED_KERNEL"] = str(path)
            return path
        tried.append(f"{where}: {path if path is not None else 'not set'}")
    raise PlumedNotFound(
        "no PLUMED kernel found; tried " + "; ".join(tried)
        + ". Set PLUMED_KERNEL to libplumedKernel.so, or install the 'hillclimber' wheel "
        "(pip install --no-deps hillclimber) or conda-forge 'plumed'."
    )


def plumed_command() -> tuple[list[str], dict[str, str]]:
    """(argv prefix, environment) running the ``plumed`` CLI that belongs to the kernel."""
    kernel = find_plumed_kernel()
    root = kernel.parent.parent
    exe = root / "bin" / "plumed"
    if not exe.is_file():
        found = shutil.which("plumed")
        if found is None:
            raise PlumedNotFound(f"no 'plumed' executable next to {kernel} ({exe}) or on PATH")
        exe = Path(found)
    env = dict(os.environ)
    env["PLUMED_KERNEL"] = str(kernel)
    env["PLUMED_ROOT"] = str(root / "lib" / "plumed") if (root / "lib" / "plumed").is_dir() else str(root)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(kernel.parent), env.get("LD_LIBRARY_PATH", "")) if p)
    return [str(exe)], env


def run_plumed(args: Sequence[str], cwd: str | os.PathLike | None = None) -> str:
    """Run ``plumed <args>`` and return its stdout; raise RuntimeError with its output on failure."""
    argv, env = plumed_command()
    proc = subprocess.run([*argv, *args], cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"plumed {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def prepare_plumed_input(text: str, biasfactor: float | None) -> list[str]:
    """PLUMED input lines; ``BIASFACTOR=<biasfactor>`` appended to METAD lines without one.

    Raises ValueError when there is no METAD action or its HILLS file is not named ``HILLS``.
    """
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip() and not ln.strip().startswith("#")]
    metad = [i for i, ln in enumerate(lines) if re.search(r"(^|\s|:)METAD(\s|$)", ln)]
    if not metad:
        raise ValueError("metadynamics.plumed: no METAD action in the PLUMED input")
    for i in metad:
        if "BIASFACTOR" not in lines[i] and biasfactor is not None:
            lines[i] += f" BIASFACTOR={biasfactor:g}"
        m = re.search(r"\bFILE=(\S+)", lines[i])
        if m is not None and m.group(1) != "HILLS":
            raise ValueError(f"metadynamics.plumed: METAD must write FILE=HILLS (got FILE={m.group(1)})")
    return lines


def read_plumed_table(path: str | Path) -> tuple[list[str], "np.ndarray"]:
    """Column names (from ``#! FIELDS``) and the numeric rows of a PLUMED COLVAR/HILLS/FES file."""
    import numpy as np

    names: list[str] = []
    rows = []
    for line in Path(path).read_text().splitlines():
        if line.startswith("#! FIELDS"):
            names = line.split()[2:]
        elif line.strip() and not line.startswith("#"):
            rows.append([float(x) for x in line.split()])
    return names, np.array(rows, float).reshape(-1, len(names))


@contextlib.contextmanager
def plumed_run_dir(out_dir: str | os.PathLike, who: str, log: logging.Logger) -> Iterator[Path]:
    """Work inside ``out_dir`` for a biased run; yields the PLUMED kernel path.

    Stale HILLS/COLVAR of an earlier run are removed first (PLUMED would append to them), and a
    run that leaves no HILLS file is an error naming ``who`` and the folder.
    """
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("HILLS", "COLVAR"):
        (out / stale).unlink(missing_ok=True)
    kernel = find_plumed_kernel()
    log.info("%s: PLUMED kernel %s, files in %s", who, kernel, out)
    with contextlib.chdir(out):
        yield kernel
    if not (out / "HILLS").is_file():
        raise RuntimeError(f"{who}: PLUMED wrote no HILLS file in {out}")


class PlumedBias:
    """A PLUMED kernel biasing an MD run: ``compute(positions_nm, box_nm, step, update)`` gives the
    bias energy (kJ/mol) and forces (kJ/mol/nm) on every atom, in PLUMED's atom order (mlmm order:
    PLUMED atom ``k + 1`` is mlmm atom ``k``). ``update`` adds hills and prints COLVAR for ``step``:
    true once per MD step, false for extra evaluations at the same positions (a saved frame).
    ``extra_cvs`` of :meth:`compute` hands CVs the MD code computes itself to the input's
    ``EXTRACV`` actions. Log to ``log_file`` (default plumed.log in the working directory); call
    :meth:`finalize` (or use it as a context manager) so PLUMED flushes HILLS and COLVAR."""

    def __init__(self, lines: Sequence[str], *, masses_amu: "np.ndarray", charges_e: "np.ndarray",
                 timestep_fs: float, temperature_K: float, log_file: str | os.PathLike | None = None) -> None:
        import numpy as np

        find_plumed_kernel()
        import plumed
        from openmm.unit import MOLAR_GAS_CONSTANT_R, kilojoule_per_mole, kelvin

        self.n_atoms = len(masses_amu)
        self._masses = np.ascontiguousarray(masses_amu, dtype=np.float64)
        self._charges = np.ascontiguousarray(charges_e, dtype=np.float64)
        self.kernel = plumed.Plumed()
        self.kernel.cmd("setMDEngine", "python")
        self.kernel.cmd("setNatoms", self.n_atoms)
        self.kernel.cmd("setTimestep", timestep_fs / 1000.0)
        self.kernel.cmd("setKbT", float((MOLAR_GAS_CONSTANT_R * temperature_K * kelvin).value_in_unit(kilojoule_per_mole)))
        self.kernel.cmd("setLogFile", str(Path(log_file) if log_file is not None else Path.cwd() / "plumed.log"))
        self.kernel.cmd("init")
        for line in lines:
            self.kernel.cmd("readInputLine", line)
        self._finalized = False

    def compute(self, positions_nm: "np.ndarray", box_nm: "np.ndarray | None", step: int, update: bool,
                extra_cvs: "dict[str, float] | None" = None) -> tuple[float, "np.ndarray", dict[str, float]]:
        """Bias energy (kJ/mol), forces ((n_atoms, 3) kJ/mol/nm) at ``positions_nm`` for MD ``step``
        and, per ``EXTRACV`` name of ``extra_cvs`` (name → value), −dV/d(value) (kJ/mol per CV unit)."""
        import numpy as np

        forces = np.zeros((self.n_atoms, 3))
        virial = np.zeros((3, 3))
        bias = np.zeros(1)
        self.kernel.cmd("setStep", int(step))
        if box_nm is not None:
            self.kernel.cmd("setBox", np.ascontiguousarray(box_nm, dtype=np.float64))
        self.kernel.cmd("setMasses", self._masses)
        self.kernel.cmd("setCharges", self._charges)
        self.kernel.cmd("setPositions", np.ascontiguousarray(positions_nm, dtype=np.float64))
        self.kernel.cmd("setForces", forces)
        self.kernel.cmd("setVirial", virial)
        cvs = {name: (np.array([float(value)]), np.zeros(1)) for name, value in (extra_cvs or {}).items()}
        for name, (value, force) in cvs.items():
            self.kernel.cmd(f"setExtraCV {name}", value)
            self.kernel.cmd(f"setExtraCVForce {name}", force)
        self.kernel.cmd("prepareCalc")
        self.kernel.cmd("performCalc" if update else "performCalcNoUpdate")
        self.kernel.cmd("getBias", bias)
        return float(bias[0]), forces, {name: float(force[0]) for name, (_, force) in cvs.items()}

    def finalize(self) -> None:
        """Flush and close PLUMED's files (once)."""
        if not self._finalized:
            self.kernel.finalize()
            self._finalized = True

    def __enter__(self) -> "PlumedBias":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.finalize()
