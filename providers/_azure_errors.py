"""Azure's errors, classified once into cherrypick's tree (``cherrypick.errors``).

The codes are Azure Resource Manager's, as its troubleshooting pages name them ("Resolve errors
for SKU not available", "Troubleshoot allocation failures", "Resolve errors for resource quotas",
"Troubleshoot throttling errors"): an ``HttpResponseError`` carries them in ``.error.code``
(``ODataV4Format``), for an answer to the request itself and for a long-running operation that
ended ``Failed`` alike, with the cause sometimes one level down in ``.error.details``.

Nothing here imports the SDK at module import time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from cherrypick.errors import (
    CapacityError,
    CredentialsError,
    ProvisioningError,
    QuotaError,
    Scope,
)

__all__ = ["PROVIDER", "absent_as_none", "classify", "credentials_error", "error_code"]

T = TypeVar("T")

PROVIDER = "azure"
ADVICE = f"run 'cherrypick doctor --provider {PROVIDER}'"

#: No machines of that size there now: the zone when the launch named one, else the region.
CAPACITY_CODES = frozenset(
    {
        "SkuNotAvailable",
        "AllocationFailed",
        "ZonalAllocationFailed",
        "OverconstrainedAllocationRequest",
        "OverconstrainedZonalAllocationRequest",
    }
)
#: ``OperationNotAllowed`` is a quota error only when its message says so (it is also the code
#: of unrelated refusals, e.g. resizing a running VM).
QUOTA_CODES = frozenset({"QuotaExceeded"})
#: Who we are is refused, or the subscription is not ours to use: no placement can work.
CREDENTIAL_CODES = frozenset(
    {
        "AuthorizationFailed",
        "InvalidAuthenticationToken",
        "ExpiredAuthenticationToken",
        "InvalidAuthenticationTokenTenant",
        "SubscriptionNotFound",
        "InvalidSubscriptionId",
    }
)
#: Throttling and Azure's own internal failures: worth the same call again after a pause.
TRANSIENT_CODES = frozenset(
    {
        "TooManyRequests",
        "InternalServerError",
        "InternalExecutionError",
        "RetryableError",
        "ServiceUnavailable",
        "GatewayTimeout",
    }
)
_QUOTA_NAME = re.compile(r"exceeding approved (.+?) quota", re.IGNORECASE)
_FAMILY = re.compile(r"\b(\w+Family)\b")


def classify(
    exc: Exception, region: str | None, zone: str | None = None
) -> ProvisioningError | None:
    """``exc`` as cherrypick's error (scope ``retry`` for a transient one), or None when it is
    not an Azure error at all (a bug of ours, to be raised as it is)."""
    from azure.core.exceptions import (
        AzureError,
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if isinstance(exc, ClientAuthenticationError):
        return credentials_error(_message(exc), error_code(exc) or "ClientAuthenticationError")
    if isinstance(exc, HttpResponseError):
        return _classify_response(exc, region, zone)
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return ProvisioningError(PROVIDER, _message(exc), region=region, scope=Scope.RETRY)
    if isinstance(exc, AzureError):
        return ProvisioningError(PROVIDER, _message(exc), region=region)
    return None


def credentials_error(message: str, code: str | None = None) -> CredentialsError:
    """A refusal of who we are, ending with the advice to run ``doctor``."""
    return CredentialsError(PROVIDER, f"{message.rstrip('. ')}; {ADVICE}", code=code)


def error_code(exc: Any) -> str | None:
    """The ARM error code of an ``HttpResponseError``: the first one we know of, looking one
    level down (a failed deployment names the cause in its details), else its own code."""
    codes = _codes(getattr(exc, "error", None))
    known = (
        CAPACITY_CODES | QUOTA_CODES | CREDENTIAL_CODES | TRANSIENT_CODES | {"OperationNotAllowed"}
    )
    return next((c for c in codes if c in known), codes[0] if codes else None)


def absent_as_none(call: Callable[[], T]) -> Callable[[], T | None]:
    """``call`` answering None where Azure says the resource (or its group) is not there
    (404: ``ResourceNotFound``, ``ResourceGroupNotFound``)."""

    def read() -> T | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return call()
        except ResourceNotFoundError:
            return None

    return read


def _classify_response(exc: Any, region: str | None, zone: str | None) -> ProvisioningError:
    code = error_code(exc)
    message = _message(exc)
    if code in CAPACITY_CODES:
        scope = Scope.ZONE if zone is not None else Scope.REGION
        return CapacityError(PROVIDER, message, region=region, zone=zone, scope=scope, code=code)
    if code in QUOTA_CODES or (code == "OperationNotAllowed" and "quota" in message.lower()):
        return QuotaError(
            PROVIDER, message, region=region, zone=zone, code=code, quota=_quota_name(message)
        )
    if code in CREDENTIAL_CODES:
        return credentials_error(message, code)
    status = getattr(exc, "status_code", None) or 0
    if code in TRANSIENT_CODES or status == 429 or status >= 500:
        return ProvisioningError(PROVIDER, message, region=region, scope=Scope.RETRY, code=code)
    return ProvisioningError(PROVIDER, message, region=region, code=code)


def _codes(error: Any) -> list[str]:
    if error is None:
        return []
    details = getattr(error, "details", None) or []
    own = [error.code] if getattr(error, "code", None) else []
    return own + [c for detail in details for c in _codes(detail)]


def _message(exc: Exception) -> str:
    """The service's own message when there is one (not the SDK's multi-line rendering)."""
    error = getattr(exc, "error", None)
    messages = [m for m in _messages(error) if m]
    text = " ".join(messages) if messages else str(exc)
    return " ".join(text.split())


def _messages(error: Any) -> list[str]:
    if error is None:
        return []
    details = getattr(error, "details", None) or []
    return [getattr(error, "message", None) or ""] + [m for d in details for m in _messages(d)]


def _quota_name(message: str) -> str | None:
    """The quota a quota error names: the VM family (``standardNCSv3Family``) when the message
    names one, else the quota as written ("Total Regional Cores", "LowPriorityCores")."""
    found = _QUOTA_NAME.search(message)
    if found is None:
        return None
    family = _FAMILY.search(found.group(1))
    return family.group(1) if family else found.group(1)
