#!/usr/bin/env bash
# Create (or update) the project virtual environment in .venv, idempotently.
#
# Why this is not a plain `pip install -e .`: schnetpack 2.2.0 declares Python >= 3.12, but its code
# runs on 3.11; pip on 3.11 would otherwise fall back to schnetpack 2.1.x, whose pins drag torch down
# to a CUDA build. So torch is installed first (pinned CPU build), then schnetpack's run-time
# dependencies explicitly, then schnetpack itself without dependency resolution.
# hillclimber is installed without its ~80 dependencies: we only use the PLUMED kernel it bundles.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${MLMM_VENV:-.venv}
STAMP="$VENV/.mlmm-installed"
HASH=$(cat tools/install.sh pyproject.toml | sha256sum | cut -c1-16)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$HASH" ]; then
    echo "mlmm environment in $VENV is up to date"
    exit 0
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/python -m pip --disable-pip-version-check"
$PIP install -q --upgrade pip
$PIP install -q torch==2.13.0
$PIP install -q "numpy>=2.0" "sympy>=1.13" "ase>=3.23" h5py pyyaml "hydra-core>=1.1" hydra-colorlog \
    "pytorch_lightning>=2.0" torchmetrics rich fasteners dirsync torch-ema "matscipy>=1.1" tqdm \
    progressbar petname vesin tensorboardX protobuf
$PIP install -q --no-deps --ignore-requires-python schnetpack==2.2.0
$PIP install -q --no-deps hillclimber==0.1.8
$PIP install -q -e ".[dev]"
echo "$HASH" > "$STAMP"
echo "mlmm environment ready in $VENV"
