"""The Azure SDK as the provider uses it: the credential, the subscription, the three management
clients made on first use, and every call retried and classified in one place.

The SDK's own retry policy is turned off (``retry_total=0``) so that throttling and 5xx answers
are retried once, here, by ``_cloud.retrying`` with the injected ``sleep`` (as the other clouds'
are), not twice over with the SDK's own sleeps; a long-running operation that ends ``Failed``
raises from ``.result()`` and is classified like an immediate error.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from cherrypick.providers._azure_errors import classify, credentials_error
from cherrypick.providers._cloud import retrying
from cherrypick.providers.base import Placement

__all__ = ["ARM_SCOPE", "DEFAULT_POLL_S", "Sdk"]

T = TypeVar("T")

#: Resource Manager's token scope.
ARM_SCOPE = "https://management.azure.com/.default"
#: How often a long-running operation is polled when Azure sends no Retry-After (the SDK's own
#: default, 30 s, would add up to half a minute of billed GPU time to every launch).
DEFAULT_POLL_S = 5.0


class Sdk:
    """The SDK for one subscription (``subscription_id``, else ``$AZURE_SUBSCRIPTION_ID``).
    ``credential`` defaults to ``DefaultAzureCredential()``; ``transport`` and
    ``polling_interval`` go to the clients."""

    def __init__(
        self,
        *,
        credential: Any = None,
        subscription_id: str | None = None,
        transport: Any = None,
        polling_interval: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._credential = credential
        self._subscription_id = subscription_id
        self._transport = transport
        self._polling_interval = DEFAULT_POLL_S if polling_interval is None else polling_interval
        self._sleep = sleep
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def subscription(self) -> str:
        found = self._subscription_id or os.environ.get("AZURE_SUBSCRIPTION_ID")
        if not found:
            raise credentials_error(
                "no Azure subscription given: set clouds.azure.subscription_id or"
                " AZURE_SUBSCRIPTION_ID (az account show --query id -o tsv)",
                "NoSubscription",
            )
        return found

    def credential(self) -> Any:
        if self._credential is None:
            from azure.identity import DefaultAzureCredential

            self._credential = DefaultAzureCredential()
        return self._credential

    def client(self, kind: str) -> Any:
        """The client of ``kind`` (compute, network, resource). Typed ``Any``: the package
        supports SDK generations whose signatures differ."""
        with self._lock:
            if kind not in self._clients:
                options: dict[str, Any] = {
                    "retry_total": 0,
                    "polling_interval": self._polling_interval,
                }
                if self._transport is not None:
                    options["transport"] = self._transport
                made = _client_class(kind)(self.credential(), self.subscription, **options)
                self._clients[kind] = made
            return self._clients[kind]

    def call(self, call: Callable[[], T], region: str | None, zone: str | None = None) -> T:
        """``call()`` with transient errors retried and the rest classified for the place."""
        return retrying(call, lambda exc: classify(exc, region, zone), sleep=self._sleep)

    def finish(self, begin: Callable[[], Any], placement: Placement) -> Any:
        """A long-running operation started and waited for, retried whole when transient (ARM
        creates are idempotent PUTs)."""
        return self.call(lambda: begin().result(), placement.region, placement.zone)


def _client_class(kind: str) -> Any:
    if kind == "compute":
        from azure.mgmt.compute import ComputeManagementClient

        return ComputeManagementClient
    if kind == "network":
        from azure.mgmt.network import NetworkManagementClient

        return NetworkManagementClient
    from azure.mgmt.resource.resources import ResourceManagementClient

    return ResourceManagementClient
