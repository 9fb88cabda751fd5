"""Random seeds of every stochastic job, derived from the configured base seeds in one place.

Scheme: ``seed = base + STREAMS[stream] + 1000 * iteration + index``, where ``base`` is the
seed of the config section (``al.seed``, ``training.seed``, ``production.seed``,
``excited.dynamics.seed``, a sampler's ``seed``), ``iteration`` the AL iteration (or the round
of adaptive sampling) and ``index`` the walker, member or replica. Streams sharing a base get
offsets 10 000 apart so their seeds do not collide while iterations stay below 10 and indices
below 1000. This reproduces the offsets the jobs used before the scheme was written down, so
runs keep their numbers.
"""

from __future__ import annotations

#: Offset of each stream from its section's base seed.
STREAMS: dict[str, int] = {
    "al_walker": 0,  # al.seed: walker `index` of AL iteration `iteration`
    "training_member": 0,  # training.seed: ensemble member `index`
    "production_replica": 0,  # production.seed: NVT replica `index`
    "production_nve": 10_000,  # production.seed: the NVE check (equilibration and NVE run)
    "production_metadynamics": 20_000,  # production.seed: metaD replica `index`
    "excited_replica": 0,  # excited.dynamics.seed: bright-state replica `index`
    "excited_ground": 10_000,  # excited.dynamics.seed: the ground-state run before replica `index`
    "adaptive_run": 0,  # a sampler's seed: walker `index` of adaptive-sampling round `iteration`
}


def derive_seed(base: int, *, stream: str, iteration: int = 0, index: int = 0) -> int:
    """Seed of one run of ``stream``: ``base + STREAMS[stream] + 1000 * iteration + index``."""
    if stream not in STREAMS:
        raise ValueError(f"unknown seed stream {stream!r}; known: {sorted(STREAMS)}")
    return int(base) + STREAMS[stream] + 1000 * int(iteration) + int(index)
