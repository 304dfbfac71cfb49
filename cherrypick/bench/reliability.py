"""Whether a reported confidence can be trusted: a reliability table.

Searches are binned by the P(within) they reported when they stopped; in each bin, the share
whose recommendation truly was within that share of the optimum. A calibrated confidence has, in
each bin, a true share at least the bin's reported one (the ``>= 0.9`` row is the target's).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["BINS", "format_reliability", "reliability_rows"]

#: The bins' lower edges (each bin runs to the next edge; the last one to 1 inclusive).
BINS = (0.0, 0.5, 0.8, 0.9, 0.95)


def reliability_rows(
    reported: Sequence[float | None], truly: Sequence[bool], label: str = ""
) -> list[dict[str, Any]]:
    """One row per bin (searches with no confidence left out), then the ``>= 0.9`` row."""
    pairs = [(c, t) for c, t in zip(reported, truly, strict=True) if c is not None]
    edges = [*BINS, 1.0 + 1e-9]
    spans = [(f"[{lo:.2f}, {hi:.2f})", lo, hi) for lo, hi in zip(edges, edges[1:], strict=False)]
    spans.append((">= 0.90", 0.9, 1.0 + 1e-9))
    rows = []
    for name, lo, hi in spans:
        chosen = [(c, t) for c, t in pairs if lo <= c < hi]
        rows.append(
            {
                "group": label,
                "reported": name.replace("1.00)", "1.00]"),
                "searches": len(chosen),
                "mean_reported": _mean([c for c, _ in chosen]),
                "truly_within": _mean([float(t) for _, t in chosen]),
            }
        )
    return rows


def format_reliability(rows: Sequence[dict[str, Any]], within: float) -> str:
    import pandas as pd

    frame = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_rows", None):
        body = frame.to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-")
    return f"reliability of P(within {within:.0%}) at the stop\n{body}"


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None
