"""The catalog: cloud GPU offerings and datasheet figures read from ``configs/``, the filters a
search applies, and the features the optimiser sees. Refreshing the files is ``catalog.refresh``."""

from cherrypick.catalog.gpus import GpuSpec, parse_gpus
from cherrypick.catalog.offerings import (
    COLUMNS,
    FEATURE_NAMES,
    INTERCONNECTS,
    PROVIDERS,
    CatalogFilter,
    candidate_features,
    candidates,
    load_catalog,
    load_gpus,
)

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
    "parse_gpus",
]
