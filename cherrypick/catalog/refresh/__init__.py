"""Offline tooling: rebuild ``configs/catalogs/*.csv`` from sourced catalog facts. Never run by a
search; ``python -m cherrypick.catalog.refresh --from FACTS --out configs/catalogs``."""

from cherrypick.catalog.refresh.build import build_catalogs, main

__all__ = ["build_catalogs", "main"]
