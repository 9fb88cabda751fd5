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
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

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
