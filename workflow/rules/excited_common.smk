"""Paths and helpers of the excited-state rules (spectra.smk): bright-state AL iterations are a wildcard."""

EXC = f"{R}/excited"
EXC_MEMBERS = list(range(config["excited"]["training"]["n_members"]))
EXC_N_ITER = config["excited"]["al"]["max_iterations"]
EXC_WALKERS = list(range(config["excited"]["al"]["n_walkers"]))
# the bright-state loop runs with the al section overridden by excited.al
EXC_AL = {**config["al"], **config["excited"]["al"]}
EXC_TRAINING = {
    **config["training"],
    **{k: v for k, v in config["excited"]["training"].items() if k != "n_members"},
}


def exc_dbs_up_to(it: int) -> list:
    return [f"{EXC}/labels/bright.db"] + [
        f"{EXC}/al/it{i}/bright.db" for i in range(1, it + 1)
    ]


def exc_records_up_to(it: int) -> list:
    return [f"{EXC}/labels/records.json"] + [
        f"{EXC}/al/it{i}/records.json" for i in range(1, it + 1)
    ]


def exc_models(it: int) -> list:
    return [f"{EXC}/models/it{it}/member{m}.pt" for m in EXC_MEMBERS]


def exc_selection_of(it: int) -> list:
    return [f"{EXC}/al/it{it}/selection.json"] if it >= 1 else []
