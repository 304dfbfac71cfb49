"""The configuration catalog: offerings, the candidates built from them, and their features.

An offering is one VM type in one region, as ``configs/catalogs/{aws,azure,gcp}.csv`` list it (our
own schema, built by ``cherrypick catalog refresh`` from sourced facts or the providers' APIs),
with the zones that offer it in ``extra["zones"]``. A candidate is an offering times a node count.
GPU datasheet figures come from ``configs/gpus.yaml``. Nothing here touches the network: catalogs
are data, refreshed by a separate command.

Typical use::

    offerings = load_catalog()
    chosen = CatalogFilter(providers=["aws"], gpus=["A100"], max_nodes=2).candidates(offerings)
    names, matrix = candidate_features(chosen, load_gpus())
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from cherrypick.catalog.csv_format import COLUMNS, INTERCONNECTS, PROVIDERS, Seen, read_catalog
from cherrypick.catalog.gpus import GpuSpec, parse_gpus
from cherrypick.errors import InputError, UnknownNameError, ValidationError
from cherrypick.providers.base import Candidate, Offering

if TYPE_CHECKING:  # only for annotations: the module moved between Python 3.10 and 3.11
    from importlib.resources.abc import Traversable

__all__ = [
    "COLUMNS",
    "FEATURE_NAMES",
    "INTERCONNECTS",
    "PROVIDERS",
    "CatalogFilter",
    "GpuSpec",
    "candidate_features",
    "candidates",
    "load_catalog",
    "load_gpus",
]

FEATURE_NAMES = (
    "log2_total_fp16_tflops",
    "log2_total_tf32_tflops",
    "log2_total_fp32_tflops",
    "log2_gpu_memory_bandwidth_gbs",
    "log2_total_memory_bandwidth_gbs",
    "log2_gpu_memory_gib",
    "log2_gpus_per_node",
    "log2_nodes",
    "log2_total_gpus",
    "log2_vcpus_per_gpu",
    "log2_memory_gib_per_gpu",
    "log2_network_gbps",
    "interconnect",
)


def load_gpus(path: Path | None = None) -> dict[str, GpuSpec]:
    """GPU datasheet figures by GPU name; the bundled ``configs/gpus.yaml`` by default."""
    resource = path if path is not None else files("cherrypick.configs") / "gpus.yaml"
    return parse_gpus(_read(resource), str(resource))


def load_catalog(
    providers: Sequence[str] | None = None,
    paths: Sequence[Path] | None = None,
    gpus: Mapping[str, GpuSpec] | None = None,
) -> list[Offering]:
    """Validated offerings of the given catalog files (default: the bundled ones).

    ``providers`` keeps only those providers' offerings (and, without ``paths``, reads only their
    bundled files). Bad rows raise ``ValidationError`` naming file, line and column.
    """
    wanted = _resolve("provider", providers, PROVIDERS)
    specs = load_gpus() if gpus is None else gpus
    bundled = [_bundled_catalog(p) for p in PROVIDERS if wanted is None or p in wanted]
    sources: Sequence[Path | Traversable] = bundled if paths is None else paths
    seen: Seen = {}
    offerings = [o for s in sources for o in read_catalog(_read(s), str(s), specs, seen)]
    return [o for o in offerings if wanted is None or o.provider in wanted]


@dataclass(frozen=True)
class CatalogFilter:
    """Which offerings and node counts a search may use; every field is optional.

    Names are matched case-insensitively; an unknown one raises ``UnknownNameError`` listing the
    valid names. ``max_price_per_hour`` bounds a whole candidate (price per VM x nodes).
    """

    providers: Sequence[str] | None = None
    regions: Sequence[str] | None = None
    gpus: Sequence[str] | None = None
    min_gpu_memory_gib: float | None = None
    max_nodes: int = 4
    max_price_per_hour: float | None = None

    def __post_init__(self) -> None:
        for name in ("providers", "regions", "gpus"):
            value = getattr(self, name)
            if value is not None:  # a bare string would otherwise be read letter by letter
                object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(value))
        _check_nodes(self.max_nodes)
        _check_positive("min_gpu_memory_gib", self.min_gpu_memory_gib, allow_zero=True)
        _check_positive("max_price_per_hour", self.max_price_per_hour)

    def apply(
        self, offerings: Sequence[Offering], gpus: Mapping[str, GpuSpec] | None = None
    ) -> list[Offering]:
        """The offerings this filter keeps (one node of each must fit the price bound)."""
        providers = _resolve("provider", self.providers, PROVIDERS)
        regions = _resolve("region", self.regions, {o.region for o in offerings})
        known_gpus = load_gpus() if gpus is None else gpus
        gpu_names = _resolve("GPU", self.gpus, known_gpus)
        min_memory = self.min_gpu_memory_gib or 0.0
        max_price = math.inf if self.max_price_per_hour is None else self.max_price_per_hour
        return [
            o
            for o in offerings
            if (providers is None or o.provider in providers)
            and (regions is None or o.region in regions)
            and (gpu_names is None or o.gpu in gpu_names)
            and o.gpu_memory_gib >= min_memory
            and o.price_per_hour <= max_price
        ]

    def candidates(
        self, offerings: Sequence[Offering], gpus: Mapping[str, GpuSpec] | None = None
    ) -> list[Candidate]:
        """The kept offerings times 1..max_nodes, within the price bound."""
        return candidates(self.apply(offerings, gpus), self.max_nodes, self.max_price_per_hour)


def candidates(
    offerings: Iterable[Offering], max_nodes: int, max_price_per_hour: float | None = None
) -> list[Candidate]:
    """Every offering times 1..max_nodes nodes whose whole price (per VM x nodes) fits the bound."""
    _check_nodes(max_nodes)
    _check_positive("max_price_per_hour", max_price_per_hour)
    bound = math.inf if max_price_per_hour is None else max_price_per_hour
    return [
        Candidate(o, n)
        for o in offerings
        for n in range(1, max_nodes + 1)
        if o.price_per_hour * n <= bound
    ]


def candidate_features(
    candidates: Sequence[Candidate], gpus: Mapping[str, GpuSpec]
) -> tuple[list[str], NDArray[np.float64]]:
    """One row of numeric features per candidate (columns named by ``FEATURE_NAMES``).

    Sizes and rates are log2-scaled, since their effect on runtime is multiplicative; the
    interconnect is an ordinal (pcie 0, nvlink 1, nvswitch 2). The optimiser min-max scales them.
    """
    rows = [_features(c, gpus) for c in candidates]
    matrix = np.array(rows, dtype=np.float64).reshape(len(rows), len(FEATURE_NAMES))
    return list(FEATURE_NAMES), matrix


#: A machine without GPUs (an inventory's CPU host) is featured as one device per node with its
#: vCPUs' rates: 16 fp32 FLOP per cycle per vCPU (AVX2: two 8-wide FMA units per core, shared by
#: its two hyper-threads, 2 FLOP each) at ~3 GHz, and ~2.5 GB/s of memory bandwidth per vCPU
#: (a dual-channel DDR4 desktop's ~40 GB/s over 16 threads). Rough, but monotone in the size.
CPU_TFLOPS_PER_VCPU = 0.048
CPU_GBS_PER_VCPU = 2.5


def _cpu_features(candidate: Candidate) -> list[float]:
    o = candidate.offering
    tflops = math.log2(CPU_TFLOPS_PER_VCPU * o.vcpus * candidate.nodes)
    bandwidth = CPU_GBS_PER_VCPU * o.vcpus
    return [
        tflops,
        tflops,
        tflops,
        math.log2(bandwidth),
        math.log2(bandwidth * candidate.nodes),
        math.log2(o.memory_gib),
        0.0,
        math.log2(candidate.nodes),
        math.log2(candidate.nodes),
        math.log2(o.vcpus),
        math.log2(o.memory_gib),
        math.log2(_network_gbps(o)),
        float(INTERCONNECTS.index(o.interconnect)),
    ]


def _features(candidate: Candidate, gpus: Mapping[str, GpuSpec]) -> list[float]:
    o = candidate.offering
    if o.gpus_per_node == 0:
        return _cpu_features(candidate)
    if o.gpu not in gpus:
        raise UnknownNameError("GPU", o.gpu, gpus)
    if o.interconnect not in INTERCONNECTS:
        raise UnknownNameError("interconnect", o.interconnect, INTERCONNECTS)
    spec, total = gpus[o.gpu], candidate.total_gpus
    return [
        math.log2(spec.half_precision_tflops * total),
        # fp32 training runs on TF32 tensor cores where a GPU has them (PyTorch's cuDNN default).
        math.log2((spec.tf32_tflops or spec.fp32_tflops) * total),
        math.log2(spec.fp32_tflops * total),
        math.log2(spec.memory_bandwidth_gbs),
        math.log2(spec.memory_bandwidth_gbs * total),
        math.log2(o.gpu_memory_gib),
        math.log2(o.gpus_per_node),
        math.log2(candidate.nodes),
        math.log2(total),
        math.log2(o.vcpus / o.gpus_per_node),
        math.log2(o.memory_gib / o.gpus_per_node),
        math.log2(_network_gbps(o)),
        float(INTERCONNECTS.index(o.interconnect)),
    ]


def _network_gbps(offering: Offering) -> float:
    value = offering.extra.get("network_gbps")
    if not isinstance(value, int | float) or not value > 0:
        raise InputError(f"offering {offering.key} has no positive extra['network_gbps']")
    return float(value)


def _resolve(
    kind: str, names: Sequence[str] | None, known: Collection[str]
) -> frozenset[str] | None:
    """Canonical spellings of ``names`` (None: no restriction); unknown ones raise."""
    if names is None:
        return None
    by_folded = {k.casefold(): k for k in known}
    for name in names:
        if name.casefold() not in by_folded:
            raise UnknownNameError(kind, name, known)
    return frozenset(by_folded[n.casefold()] for n in names)


def _check_nodes(max_nodes: int) -> None:
    if isinstance(max_nodes, bool) or not isinstance(max_nodes, int) or max_nodes < 1:
        raise InputError(f"max_nodes must be a whole number >= 1, got {max_nodes!r}")


def _check_positive(name: str, value: float | None, allow_zero: bool = False) -> None:
    if value is None:
        return
    low_ok = value >= 0 if allow_zero else value > 0
    if not (math.isfinite(value) and low_ok):
        raise InputError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} number")


def _bundled_catalog(provider: str) -> Traversable:
    return files("cherrypick.configs") / "catalogs" / f"{provider}.csv"


def _read(resource: Path | Traversable) -> str:
    try:
        return resource.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationError(str(resource), f"cannot read: {exc.strerror or exc}") from None
