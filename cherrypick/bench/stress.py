"""A stress suite for the replay benchmark: seeded synthetic tables of shapes that break searches.

Every table covers a Scout-like grid (4 machine families x 3 sizes x 8 node counts, 96
configurations) with real per-node prices. A workload's runtime is a base shape, a serial part plus
``work / (family speed x vCPUs)^alpha`` (sublinear scaling) plus a per-node coordination cost,
slowed while the cluster's total memory is short of the job's working set, times lognormal noise
(3% unless the family says otherwise). Each family has several seeded instances (``cliff-one/0``):

- ``cliff-one``: the memory cliff of CherryPick and Scout: spark-like jobs run 5-8x slower until
  the cluster's total memory holds the working set, then drop at once. One machine family has the
  step; the others (a gentler spill) degrade smoothly. The threshold puts the optimum just past
  the cliff, next to configurations below it that cost 3x more or worse: a smooth model that
  sees those neighbours is steered away from the optimum.
- ``cliff-several``: the same step in several families, each at its own threshold.
- ``failure-cluster``: the runs next to the optimum (its grid neighbours) fail at a timeout, as
  jobs do near an out-of-memory edge: failures look "bad" exactly where the optimum is.
- ``comm-bound``: an all-to-all term growing with the node count: runtime falls with nodes up to
  a point, then rises, so "more nodes" is not monotone for any machine type.
- ``near-ties``: a few configurations, spread across the grid, within 1-3% of the optimum's cost:
  finding "the" optimum among them takes luck, finding one of them should not.
- ``noise-2``, ``noise-5``, ``noise-10``: a smooth shape under 2%, 5% and 10% lognormal noise, as
  repeated cloud runs vary.

The tables are written in the replay table format and read back with ``load_table``, so a
stress workload is exactly what the same CSV would give (``write_tables`` writes them out).
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from cherrypick.bench.tables import ReplayWorkload, load_table
from cherrypick.errors import InputError, UnknownNameError

__all__ = [
    "DEFAULT_SEED",
    "FAMILIES",
    "StressCase",
    "grid_neighbours",
    "select_stress",
    "stress_cases",
    "stress_workloads",
    "write_tables",
]

DEFAULT_SEED = 20240611
INSTANCES = 3
HEADER = (
    "workload,vm_type,vm_family,vm_size,nodes,vcpus_per_node,mem_gib_per_node,"
    "price_per_node_hour,completed,runtime_s,cost_usd"
)


@dataclass(frozen=True)
class _Machine:
    mem_gib_per_vcpu: float
    usd_per_vcpu_hour: float
    speed: float


# AWS EC2 on-demand list prices, Linux, us-east-1 (aws.amazon.com/ec2/pricing/on-demand, as listed
# 2018-2023): c4.2xlarge $0.398, m4.2xlarge $0.40, r4.2xlarge $0.532, i3.2xlarge $0.624 an hour,
# per vCPU-hour below; memory per vCPU as AWS lists it (c4.large 3.75 GiB, r4.large 15.25 GiB).
MACHINES: dict[str, _Machine] = {
    "c4": _Machine(1.875, 0.04975, 1.15),  # compute-optimised: fast cores, little memory
    "m4": _Machine(4.0, 0.05, 1.0),  # general purpose
    "r4": _Machine(7.625, 0.0665, 1.0),  # memory-optimised
    "i3": _Machine(7.625, 0.078, 1.05),  # storage-optimised (local NVMe)
}
SIZES: dict[str, int] = {"large": 2, "xlarge": 4, "2xlarge": 8}
NODES = (4, 6, 8, 10, 12, 16, 24, 32)


@dataclass(frozen=True)
class _Grid:
    """The configurations, in table order, as aligned arrays."""

    family: tuple[str, ...]
    size: tuple[str, ...]
    nodes: NDArray[np.float64]
    vcpus: NDArray[np.float64]
    mem: NDArray[np.float64]
    price: NDArray[np.float64]
    speed: NDArray[np.float64]

    @property
    def total_mem(self) -> NDArray[np.float64]:
        return self.mem * self.nodes


def _grid() -> _Grid:
    cells = list(itertools.product(MACHINES, SIZES, NODES))
    vcpus = np.array([float(SIZES[s]) for _, s, _ in cells])
    machines = [MACHINES[f] for f, _, _ in cells]
    return _Grid(
        family=tuple(f for f, _, _ in cells),
        size=tuple(s for _, s, _ in cells),
        nodes=np.array([float(n) for _, _, n in cells]),
        vcpus=vcpus,
        mem=vcpus * np.array([m.mem_gib_per_vcpu for m in machines]),
        price=np.round(vcpus * np.array([m.usd_per_vcpu_hour for m in machines]), 4),
        speed=np.array([m.speed for m in machines]),
    )


GRID = _grid()
FAMILIES = (
    "cliff-one",
    "cliff-several",
    "failure-cluster",
    "comm-bound",
    "near-ties",
    "noise-2",
    "noise-5",
    "noise-10",
)


def grid_neighbours(i: int) -> list[int]:
    """The configurations of the same machine family one step away in size, nodes or both."""
    per_family = len(SIZES) * len(NODES)
    size, node = divmod(i % per_family, len(NODES))
    near = []
    for ds, dn in itertools.product((-1, 0, 1), repeat=2):
        s, n = size + ds, node + dn
        if (ds or dn) and 0 <= s < len(SIZES) and 0 <= n < len(NODES):
            near.append(i - i % per_family + s * len(NODES) + n)
    return near


@dataclass(frozen=True)
class StressCase:
    """One generated workload with what it was built from: ``clean_runtime_s`` without noise,
    ``cliffs`` the working set (GiB of total memory) of each machine family with a step."""

    name: str
    family: str
    runtime_s: NDArray[np.float64]
    clean_runtime_s: NDArray[np.float64]
    completed: NDArray[np.bool_]
    noise_sigma: float
    cliffs: Mapping[str, float] = field(default_factory=dict)

    def csv_lines(self) -> list[str]:
        cost = GRID.price * GRID.nodes * self.runtime_s / 3600.0
        return [
            f"{self.name},{f}.{s},{f},{s},{n:.0f},{v:.0f},{m:g},{p:g},{ok},{r:.3f},{c:.8g}"
            for f, s, n, v, m, p, ok, r, c in zip(
                GRID.family,
                GRID.size,
                GRID.nodes,
                GRID.vcpus,
                GRID.mem,
                GRID.price,
                self.completed,
                self.runtime_s,
                cost,
                strict=True,
            )
        ]


@dataclass(frozen=True)
class _Shape:
    work: float  # vCPU-seconds at speed 1
    serial_s: float
    alpha: float
    per_node_s: float
    working_set_gib: float
    spill: float  # how much slower a cluster with far too little memory runs
    speed: NDArray[np.float64]  # per configuration: its family's, jittered per workload

    def compute_s(self) -> NDArray[np.float64]:
        return self.work / (self.speed * GRID.vcpus * GRID.nodes) ** self.alpha

    def base_s(self) -> NDArray[np.float64]:
        return self.serial_s + self.compute_s() + self.per_node_s * GRID.nodes

    def spill_factor(self) -> NDArray[np.float64]:
        return 1 + (self.spill - 1) / (1 + (GRID.total_mem / self.working_set_gib) ** 3)

    def runtime_s(self) -> NDArray[np.float64]:
        return self.base_s() * self.spill_factor()


def _shape(rng: np.random.Generator) -> _Shape:
    jitter = {f: rng.lognormal(0.0, 0.08) for f in MACHINES}
    return _Shape(
        work=rng.uniform(2e5, 6e5),
        serial_s=rng.uniform(30.0, 120.0),
        alpha=rng.uniform(0.8, 0.92),
        per_node_s=rng.uniform(1.0, 4.0),
        working_set_gib=float(np.exp(rng.uniform(np.log(60.0), np.log(300.0)))),
        spill=1.6,
        speed=GRID.speed * np.array([jitter[f] for f in GRID.family]),
    )


_SIGMA = 0.03
_TRIES = 100


def _case(
    rng: np.random.Generator,
    name: str,
    clean: NDArray[np.float64],
    sigma: float = _SIGMA,
    cliffs: Mapping[str, float] | None = None,
) -> StressCase:
    noisy = clean * rng.lognormal(0.0, sigma, size=clean.shape)
    done = np.ones(clean.shape, dtype=np.bool_)
    return StressCase(name, name.split("/")[0], noisy, clean, done, sigma, dict(cliffs or {}))


def _rows(family: str) -> NDArray[np.bool_]:
    return np.array([f == family for f in GRID.family])


def _cheapest(case: StressCase) -> int:
    cost = np.where(case.completed, GRID.price * GRID.nodes * case.runtime_s, np.inf)
    return int(np.argmin(cost))


def _cliff_table(rng: np.random.Generator, name: str, count: int) -> StressCase:
    cliff = rng.uniform(5.5, 8.0)
    stepped = [str(f) for f in rng.choice(list(MACHINES), size=count, replace=False)]
    cliffs: dict[str, float] = {}
    for family in stepped:
        # Just under one of the family's memory levels: that level is past the cliff.
        levels = np.unique(GRID.total_mem[_rows(family)])
        cliffs[family] = float(levels[rng.integers(3, 9)]) * rng.uniform(0.9, 0.98)
    shape = _shape(rng)
    working_set = float(np.exp(np.mean(np.log(list(cliffs.values())))))
    shape = replace(shape, working_set_gib=working_set, spill=cliff)
    clean = shape.runtime_s()
    for family, threshold in cliffs.items():
        rows = _rows(family)
        step = np.where(GRID.total_mem < threshold, cliff, 1.0)
        clean[rows] = (shape.base_s() * step)[rows]
    return _case(rng, name, clean, cliffs=cliffs)


def _just_past_cliff(case: StressCase) -> bool:
    best = _cheapest(case)
    threshold = case.cliffs.get(GRID.family[best])
    below = [j for j in grid_neighbours(best) if threshold and GRID.total_mem[j] < threshold]
    return threshold is not None and GRID.total_mem[best] >= threshold and bool(below)


def _cliff_one(rng: np.random.Generator, name: str) -> StressCase:
    # Drawn again until the optimum is past the cliff next to configurations below it (about
    # nine draws in ten are; the others have their optimum in a smoothly degrading family).
    for _ in range(_TRIES):
        case = _cliff_table(rng, name, 1)
        if _just_past_cliff(case):
            return case
    raise RuntimeError(f"{name}: no draw put the optimum just past the cliff")


def _cliff_several(rng: np.random.Generator, name: str) -> StressCase:
    return _cliff_table(rng, name, int(rng.integers(2, len(MACHINES))))


def _failure_cluster(rng: np.random.Generator, name: str) -> StressCase:
    case = _case(rng, name, _shape(rng).runtime_s())
    best = _cheapest(case)
    near = grid_neighbours(best)
    failed = rng.choice(near, size=int(rng.integers(3, len(near) + 1)), replace=False)
    done, runtime = case.completed.copy(), case.runtime_s.copy()
    done[failed] = False
    runtime[failed] = 4 * runtime[best]  # killed at a timeout of 4x the optimum's runtime
    return replace(case, completed=done, runtime_s=runtime)


def _comm_bound(rng: np.random.Generator, name: str) -> StressCase:
    shape = _shape(rng)
    turn = float(np.exp(rng.uniform(np.log(8.0), np.log(16.0))))
    beta = rng.uniform(1.2, 2.0)
    # An all-to-all term b * nodes^beta, with b such that compute + it is least at ``turn``
    # nodes for every machine type.
    exchange = shape.compute_s() * shape.alpha / beta * (GRID.nodes / turn) ** (shape.alpha + beta)
    return _case(rng, name, shape.runtime_s() + exchange * shape.spill_factor())


def _near_ties(rng: np.random.Generator, name: str) -> StressCase:
    case = _case(rng, name, _shape(rng).runtime_s())
    best = _cheapest(case)
    cost = GRID.price * GRID.nodes * case.runtime_s
    per_type: dict[tuple[str, str], int] = {}
    for i in np.argsort(cost):
        key = (GRID.family[i], GRID.size[i])
        if key != (GRID.family[best], GRID.size[best]) and i not in grid_neighbours(best):
            per_type.setdefault(key, int(i))
    candidates = list(per_type.values())[:6]
    ties = rng.choice(candidates, size=int(rng.integers(3, 5)), replace=False)
    runtime = case.runtime_s.copy()
    gap = rng.uniform(0.01, 0.03, size=len(ties))
    runtime[ties] = cost[best] * (1 + gap) / (GRID.price[ties] * GRID.nodes[ties])
    return replace(case, runtime_s=runtime, clean_runtime_s=runtime.copy())


def _noise(sigma: float) -> Callable[[np.random.Generator, str], StressCase]:
    def build(rng: np.random.Generator, name: str) -> StressCase:
        return _case(rng, name, _shape(rng).runtime_s(), sigma)

    return build


_BUILDERS: dict[str, Callable[[np.random.Generator, str], StressCase]] = {
    "cliff-one": _cliff_one,
    "cliff-several": _cliff_several,
    "failure-cluster": _failure_cluster,
    "comm-bound": _comm_bound,
    "near-ties": _near_ties,
    "noise-2": _noise(0.02),
    "noise-5": _noise(0.05),
    "noise-10": _noise(0.10),
}


def stress_cases(seed: int = DEFAULT_SEED) -> list[StressCase]:
    """Every instance of every family; each drawn from its own stream of ``seed``."""
    return [
        _BUILDERS[family](np.random.default_rng([seed, k, i]), f"{family}/{i}")
        for k, family in enumerate(FAMILIES)
        for i in range(INSTANCES)
    ]


def write_tables(folder: Path | str, seed: int = DEFAULT_SEED) -> list[Path]:
    """One replay table per family, ``stress-FAMILY.csv`` in ``folder`` (made if missing)."""
    out = Path(folder)
    cases = stress_cases(seed)
    paths = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        for family in FAMILIES:
            lines = [f"# stress suite '{family}', seed {seed}: synthetic (cherrypick.bench.stress)"]
            lines += [HEADER] + [ln for c in cases if c.family == family for ln in c.csv_lines()]
            path = out / f"stress-{family}.csv"
            path.write_text("\n".join(lines) + "\n")
            paths.append(path)
    except OSError as exc:
        raise InputError(f"cannot write the stress tables to {out}: {exc.strerror}") from None
    return paths


def stress_workloads(seed: int = DEFAULT_SEED) -> list[ReplayWorkload]:
    """The suite as replay workloads: the written tables, read back by ``load_table``."""
    with tempfile.TemporaryDirectory() as folder:
        tables = [load_table(p) for p in write_tables(folder, seed)]
    return [w for t in tables for w in t.workloads.values()]


def select_stress(
    workloads: Sequence[ReplayWorkload], names: Sequence[str] | None
) -> list[ReplayWorkload]:
    """The workloads named exactly (``cliff-one/0``) or by family (``cliff-one``); all if none."""
    if not names:
        return list(workloads)
    chosen: dict[str, ReplayWorkload] = {}
    for name in names:
        match = [w for w in workloads if name in (w.name, w.name.split("/")[0])]
        if not match:
            raise UnknownNameError("workload", name, [*FAMILIES, *(w.name for w in workloads)])
        chosen.update((w.name, w) for w in match)
    return list(chosen.values())
