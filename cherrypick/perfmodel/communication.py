"""DDP gradient all-reduce: the ring model, hierarchical across nodes, overlapped with backward.

Backward runs from the output layer to the input layer, so gradients become ready in that order.
DDP packs them into buckets of about 25 MB (``bucket_cap_mb``'s default) in the same order and
all-reduces a bucket as soon as its last gradient is ready, one bucket after another on one
communication stream. What is still running when backward ends is exposed. Note that the big
fully connected layers of AlexNet and VGG sit at the output, so their gradients are ready first;
they hurt because their bytes keep the link busy for longer than the rest of backward lasts.
"""

from __future__ import annotations

from collections.abc import Sequence

from cherrypick.catalog.gpus import GpuSpec
from cherrypick.providers.base import Candidate

__all__ = [
    "BUCKET_BYTES",
    "allreduce_s",
    "buckets",
    "exposed_communication_s",
    "intra_node_gbs",
    "ring_allreduce_s",
]

BUCKET_BYTES = 25 * 2**20
#: NCCL reaches about 80 % of a link's one-way bandwidth in its bus-bandwidth tests; NVLink
#: figures in gpus.yaml are both directions together, so half of them per direction.
LINK_EFFICIENCY = 0.8
#: Per-step latency of a ring: a few microseconds inside a node, tens over a cloud network (TCP).
INTRA_NODE_LATENCY_S = 10e-6
INTER_NODE_LATENCY_S = 50e-6


def ring_allreduce_s(ranks: int, nbytes: float, gbs: float, latency_s: float) -> float:
    """Ring all-reduce: 2(N-1)/N of the bytes cross the slowest link, in 2(N-1) steps."""
    if ranks <= 1:
        return 0.0
    return 2 * (ranks - 1) / ranks * nbytes / (gbs * 1e9) + 2 * (ranks - 1) * latency_s


def intra_node_gbs(candidate: Candidate, spec: GpuSpec, pcie_gbs: float) -> float:
    """Effective one-way GB/s between GPUs of one node: NVLink where wired, else PCIe."""
    nvlink = candidate.offering.interconnect in ("nvlink", "nvswitch") and spec.nvlink_gbs
    one_way = spec.nvlink_gbs / 2 if nvlink and spec.nvlink_gbs else pcie_gbs
    return one_way * LINK_EFFICIENCY


def network_gbs(candidate: Candidate) -> float:
    """Effective GB/s of the node's network link (the catalog gives Gbit/s)."""
    gbps = candidate.offering.extra.get("network_gbps")
    rate = float(gbps) if isinstance(gbps, int | float) and gbps > 0 else 10.0
    return rate / 8 * LINK_EFFICIENCY


def allreduce_s(candidate: Candidate, nbytes: float, intra_gbs: float) -> float:
    """Hierarchical all-reduce: within each node over its links, then across nodes.

    Across nodes every GPU's ring carries 1/g of the bytes and the g rings share the node's
    network link, so the link carries all the bytes once: the same formula with N = nodes.
    """
    per_node = max(1, candidate.offering.gpus_per_node)
    inside = ring_allreduce_s(per_node, nbytes, intra_gbs, INTRA_NODE_LATENCY_S)
    across = ring_allreduce_s(candidate.nodes, nbytes, network_gbs(candidate), INTER_NODE_LATENCY_S)
    return inside + across


def buckets(backward_s: Sequence[float], grad_bytes: Sequence[float]) -> list[tuple[float, float]]:
    """(ready time from the start of backward, bytes) of each bucket, layers in backward order.

    A layer's gradient is ready when its backward ends; a bucket closes once it holds 25 MB.
    """
    result: list[tuple[float, float]] = []
    clock = filled = 0.0
    for seconds, nbytes in zip(backward_s, grad_bytes, strict=True):
        clock += seconds
        filled += nbytes
        if filled >= BUCKET_BYTES:
            result.append((clock, filled))
            filled = 0.0
    if filled > 0:
        result.append((clock, filled))
    return result


def exposed_communication_s(
    backward_s: Sequence[float],
    grad_bytes: Sequence[float],
    candidate: Candidate,
    intra_gbs: float,
) -> float:
    """Seconds the all-reduce runs past the end of backward (0 on one GPU)."""
    if candidate.total_gpus <= 1:
        return 0.0
    link_free = 0.0
    for ready, nbytes in buckets(backward_s, grad_bytes):
        link_free = max(link_free, ready) + allreduce_s(candidate, nbytes, intra_gbs)
    return max(0.0, link_free - sum(backward_s))
