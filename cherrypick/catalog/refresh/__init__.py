"""Offline tooling: rebuild ``configs/catalogs/*.csv`` from sourced catalog facts or from the
providers' APIs. Never run by a search: ``cherrypick catalog refresh --from DIR | --provider P``."""

from cherrypick.catalog.refresh.api import DEFAULT_REGIONS, refresh_from_api
from cherrypick.catalog.refresh.build import Refreshed, build_catalogs

__all__ = ["DEFAULT_REGIONS", "Refreshed", "build_catalogs", "refresh_from_api"]
