"""One project's Compute Engine API as the GCP provider uses it: requests run one at a time,
transient errors retried with backoff, operations polled to ``DONE``, aggregated lists read
page after page.

The googleapiclient client and its ``httplib2.Http`` are not thread-safe, and trials run in
threads: every request runs under one lock. Operations are polled with ``get`` (and a pause
outside the lock), never the blocking ``wait``, so no thread holds the lock for long. The
library's own retries are off (``num_retries=0``): ``_cloud.retrying`` retries, with the
injectable sleep. googleapiclient is imported on first use.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from cherrypick.providers import _cloud
from cherrypick.providers._gcp_errors import (
    PROVIDER,
    classify,
    credentials_error,
    operation_error,
)

from cherrypick.errors import ProvisioningError, Scope

__all__ = ["OPERATION_POLL_S", "OPERATION_TIMEOUT_S", "ComputeApi", "Request"]

#: The pause between polls of an operation, and the longest one may run (an insert of a large
#: GPU machine can take minutes).
OPERATION_POLL_S = 2.0
OPERATION_TIMEOUT_S = 900.0
_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)

Request = Callable[[Any, str], Any]
"""Builds one API request from the compute client and the project id."""


class ComputeApi:
    """Compute Engine calls for one project. ``compute`` (a built ``compute`` v1 client),
    ``credentials`` and ``project`` replace what ``default_credentials`` (by default
    ``google.auth.default``) finds; it is asked only for what was not given."""

    def __init__(
        self,
        *,
        compute: Any = None,
        credentials: Any = None,
        project: str | None = None,
        default_credentials: Callable[[], tuple[Any, str | None]] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._compute = compute
        self._credentials = credentials
        self._project = project
        self._default_credentials = default_credentials or _google_default
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()

    def call(
        self, request: Request, region: str | None = None, zone: str | None = None
    ) -> dict[str, Any]:
        """One request's answer; a failure raised as classified for ``region``/``zone``."""

        def once() -> dict[str, Any]:
            with self._lock:
                compute, project = self._client()
                return dict(request(compute, project).execute(num_retries=0))

        return _cloud.retrying(once, lambda exc: classify(exc, region, zone), sleep=self._sleep)

    def finish(self, operation: Mapping[str, Any], region: str | None, zone: str | None) -> None:
        """Wait for the operation; raise its error, classified."""
        error = operation_error(self.wait(operation, region, zone), region or "global", zone)
        if error is not None:
            raise error

    def wait(
        self, operation: Mapping[str, Any], region: str | None, zone: str | None
    ) -> Mapping[str, Any]:
        """The operation once ``DONE`` (with or without an error)."""
        deadline = self._clock() + OPERATION_TIMEOUT_S
        while operation.get("status") != "DONE":
            if self._clock() >= deadline:
                raise ProvisioningError(
                    PROVIDER,
                    f"operation {operation.get('name')} not done after {OPERATION_TIMEOUT_S:.0f} s",
                    region=region,
                    zone=zone,
                    scope=Scope.ZONE,
                )
            self._sleep(OPERATION_POLL_S)
            operation = self.call(_poll(operation), region, zone)
        return operation

    def aggregated(self, resource: str, key: str, **query: str) -> Iterator[Mapping[str, Any]]:
        """Every item of ``resource``'s ``aggregatedList`` over all zones, page after page."""
        token: str | None = None
        while True:
            page = self.call(_page(resource, token, query))
            for scoped in page.get("items", {}).values():
                yield from scoped.get(key, [])
            token = page.get("nextPageToken")
            if not token:
                return

    def _client(self) -> tuple[Any, str]:
        """The compute client and project, found on first use (under the lock)."""
        credentials, project = self._credentials, self._project
        if (self._compute is None and credentials is None) or project is None:
            found, default_project = self._default_credentials()
            credentials, project = credentials or found, project or default_project
        if not project:
            raise credentials_error(
                "no GCP project: set clouds.gcp.project or run 'gcloud config set project <id>'"
            )
        if self._compute is None:
            self._compute = _build(credentials)
        self._credentials, self._project = credentials, project
        return self._compute, project


def _page(resource: str, token: str | None, query: Mapping[str, str]) -> Request:
    """The request for one page of ``resource``'s aggregated list."""
    return lambda c, p: getattr(c, resource)().aggregatedList(project=p, pageToken=token, **query)


def _poll(operation: Mapping[str, Any]) -> Request:
    """The request that reads ``operation`` again (a zone operation, else a global one)."""
    name = str(operation["name"])
    zone = str(operation.get("zone", "")).rsplit("/", 1)[-1]
    if zone:
        return lambda c, p: c.zoneOperations().get(project=p, zone=zone, operation=name)
    return lambda c, p: c.globalOperations().get(project=p, operation=name)


def _google_default() -> tuple[Any, str | None]:
    import google.auth

    credentials, project = google.auth.default(scopes=_SCOPES)
    return credentials, project


def _build(credentials: Any) -> Any:
    from googleapiclient import discovery

    return discovery.build(
        "compute", "v1", credentials=credentials, static_discovery=True, cache_discovery=False
    )
