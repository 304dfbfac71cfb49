"""Providers: where trials run. One module per provider, one interface
(``cherrypick.providers.base``)."""

from cherrypick.providers.base import (
    Candidate,
    Instance,
    Offering,
    Provider,
    TrialRun,
    provider_registry,
)

__all__ = ["Candidate", "Instance", "Offering", "Provider", "TrialRun", "provider_registry"]
