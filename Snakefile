"""mlmm: machine-learning potentials for QM/MM.

Chain: sampling -> PySCF QM/MM labels -> field-aware SchNet ensemble -> active learning
(explore, select, label, retrain) -> MLP/MM production -> summary. See README.md.
"""

import os
import sys
from pathlib import Path

# The config a user gives is the config they get: the demo is read only without --configfile,
# never merged under a user's file (several --configfile files merge in order, then --config).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


sys.path.insert(0, str(Path(workflow.basedir) / "src"))
# every job (rule scripts, also in the per-rule conda envs that do not install mlmm) imports this checkout's mlmm
_src = str(Path(workflow.basedir) / "src")
_path = [
    p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != _src
]
os.environ.update(
    PYTHONPATH=os.pathsep.join([_src, *_path])
)  # set, not required: no envvars directive
from mlmm.config import validate_config  # noqa: E402

validate_config(
    config,
    source=" + ".join(
        map(str, workflow.overwrite_configfiles or ["config/config.yaml"])
    )
    + " (with --config)",
)


include: "workflow/rules/common.smk"
include: "workflow/rules/system.smk"
include: "workflow/rules/sampling.smk"
include: "workflow/rules/labeling.smk"
include: "workflow/rules/test_set.smk"
include: "workflow/rules/training.smk"
include: "workflow/rules/active_learning.smk"
include: "workflow/rules/production.smk"
include: "workflow/rules/spectra.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/summary.smk"


rule all:
    default_target: True
    input:
        f"{R}/summary.json",
