"""Refresh a catalog from the provider's own APIs: ``cherrypick catalog refresh --provider P``.

The provider modules (``aws``, ``gcp``, ``azure``) read their answers into zone offers; from
there the refresh is the facts build's (``build.finish``): zones collapsed into region rows,
prices flagged, the text validated. Types the APIs do not list (or list in no zone) cannot be
launched and are not in the result.
"""

from __future__ import annotations

import datetime
import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cherrypick.catalog.offerings import PROVIDERS, load_gpus
from cherrypick.catalog.refresh.build import COMMON_NOTES, Draft, Refreshed, existing_text, finish
from cherrypick.catalog.refresh.flags import FLAG_NOTES
from cherrypick.catalog.refresh.offers import Notes, ProviderApi, known_gpus
from cherrypick.catalog.refresh.output import catalog_rows
from cherrypick.catalog.refresh.rules import RULE_NOTES
from cherrypick.errors import CherrypickError, UnknownNameError

__all__ = ["DEFAULT_REGIONS", "provider_api", "refresh_from_api"]

#: The regions of the bundled catalogs, refreshed when neither ``regions`` nor the file to replace
#: says which.
DEFAULT_REGIONS = {
    "aws": ("us-east-1", "us-west-2", "eu-west-1"),
    "azure": ("eastus", "westus2"),
    "gcp": ("us-central1", "us-east4", "europe-west4"),
}


def provider_api(provider: str) -> ProviderApi:
    """The API refresh of ``provider`` (its module is imported only now)."""
    if provider not in PROVIDERS:
        raise UnknownNameError("provider", provider, PROVIDERS)
    api: ProviderApi = importlib.import_module(f"cherrypick.catalog.refresh.{provider}").API
    return api


def refresh_from_api(
    provider: str,
    out: Path,
    *,
    clients: Any = None,
    account: str | None = None,
    regions: Sequence[str] | None = None,
    retrieved: datetime.date | None = None,
    gpus: Path | None = None,
    keep_flagged: bool = False,
) -> Refreshed:
    """``provider``'s catalog for ``out`` from its APIs (not written yet). ``clients`` are the
    module's client bundle (default: the SDK's, for ``account``); ``regions`` default to those
    of the file being replaced, else ``DEFAULT_REGIONS``."""
    api = provider_api(provider)
    specs = load_gpus(gpus)
    target = out / f"{provider}.csv"
    chosen = tuple(regions) if regions else _regions_of(target) or DEFAULT_REGIONS[provider]
    notes = Notes()
    try:
        bundle = clients if clients is not None else api.default_clients(account)
        offers = api.fetch(bundle, chosen, notes)
    except api.errors() as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CherrypickError(f"{provider} refresh: {first}") from None
    date = (retrieved or datetime.date.today()).isoformat()
    draft = Draft(
        provider,
        (
            f"source: {api.source}; regions {' '.join(chosen)}",
            f"retrieved: {date}",
            f"refresh: cherrypick catalog refresh --provider {provider}",
        ),
        (*COMMON_NOTES, *api.notes, *RULE_NOTES[provider], *FLAG_NOTES),
        tuple(known_gpus(offers, specs, notes)),
        notes,
        f"{provider} API",
    )
    return finish(draft, target, specs, keep_flagged)


def _regions_of(target: Path) -> tuple[str, ...]:
    return tuple(sorted({region for region, _ in catalog_rows(existing_text(target))}))
