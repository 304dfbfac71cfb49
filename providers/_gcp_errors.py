"""How the GCP provider classifies Compute Engine errors, once, into cherrypick's tree.

Errors come two ways. A request can fail at once with an ``HttpError`` whose JSON body lists
``error.errors[].reason`` (``quotaExceeded``, ``rateLimitExceeded``, ``forbidden``...). Or it is
accepted, and the *operation* it started ends ``DONE`` with ``error.errors[].code``
(``ZONE_RESOURCE_POOL_EXHAUSTED``, ``QUOTA_EXCEEDED``...). Sources: the Compute Engine API
reference ("Handling API errors", cloud.google.com/compute/docs/api/handling-api-errors) and
"Troubleshooting resource availability errors" (cloud.google.com/compute/docs/resource-error).

Nothing here imports googleapiclient at module import time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from cherrypick.errors import (
    CapacityError,
    CredentialsError,
    ProvisioningError,
    QuotaError,
    Scope,
)

__all__ = [
    "ADVICE",
    "ALREADY_EXISTS",
    "NOT_FOUND",
    "PROVIDER",
    "classify",
    "credentials_error",
    "operation_error",
]

PROVIDER = "gcp"
ADVICE = "run 'cherrypick doctor --provider gcp'"
#: The codes this module gives a 404 and a 409, whatever reason the body names.
NOT_FOUND = "notFound"
ALREADY_EXISTS = "alreadyExists"

#: Operation codes meaning "no machines of that type in this zone now" (resource-error page).
_ZONE_EXHAUSTED = frozenset(
    {"ZONE_RESOURCE_POOL_EXHAUSTED", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS"}
)
#: Operation codes of a busy control plane: this zone did not answer, another may.
_OPERATION_TRANSIENT = frozenset(
    {"RESOURCE_OPERATION_RATE_EXCEEDED", "RATE_LIMIT_EXCEEDED", "INTERNAL_ERROR"}
)
#: Request reasons worth repeating after a pause (403 rate limits, 400 resource not ready).
_RETRY_REASONS = frozenset(
    {"rateLimitExceeded", "userRateLimitExceeded", "resourceNotReady", "backendError"}
)
_QUOTA_REASONS = frozenset({"quotaExceeded", "limitExceeded"})
_QUOTA_IN_MESSAGE = re.compile(r"Quota '([A-Za-z0-9_-]+)' exceeded")
_ALL_REGIONS = re.compile(r"[A-Z0-9_]*_ALL_REGIONS")


def credentials_error(message: str, code: str | None = None) -> CredentialsError:
    """A CredentialsError whose message ends with the advice to run the doctor."""
    return CredentialsError(PROVIDER, f"{message}; {ADVICE}", code=code)


def classify(
    exc: Exception, region: str | None = None, zone: str | None = None
) -> ProvisioningError | None:
    """The classified form of an error raised by a Compute Engine call (None: not ours)."""
    if isinstance(exc, ProvisioningError):
        return exc
    from google.auth import exceptions as auth_errors
    from googleapiclient.errors import HttpError

    if isinstance(exc, HttpError):
        return _http_error(exc, region, zone)
    if isinstance(exc, auth_errors.DefaultCredentialsError | auth_errors.RefreshError):
        return credentials_error(f"Google credentials unusable: {exc}")
    if isinstance(exc, auth_errors.TransportError | OSError):
        return ProvisioningError(PROVIDER, f"network: {exc}", region=region, scope=Scope.RETRY)
    return None


def operation_error(
    operation: Mapping[str, Any], region: str, zone: str | None
) -> ProvisioningError | None:
    """The classified error of a DONE operation, None when it succeeded."""
    errors = list(operation.get("error", {}).get("errors", []))
    if not errors:
        return None
    codes = [str(e.get("code", "")) for e in errors]
    message = "; ".join(str(e.get("message") or e.get("code")) for e in errors)
    exhausted = next((c for c in codes if c in _ZONE_EXHAUSTED), None)
    if exhausted is not None:
        return CapacityError(
            PROVIDER, message, region=region, zone=zone, scope=Scope.ZONE, code=exhausted
        )
    if "QUOTA_EXCEEDED" in codes:
        return _quota_error(message, _quota_names(errors), region, zone, "QUOTA_EXCEEDED")
    code = codes[0]
    # An operation cannot be repeated as a call can: a busy zone counts as a failed placement.
    scope = Scope.ZONE if code in _OPERATION_TRANSIENT else None
    return ProvisioningError(PROVIDER, message, region=region, zone=zone, scope=scope, code=code)


def _http_error(exc: Any, region: str | None, zone: str | None) -> ProvisioningError:
    status = int(exc.resp.status)
    error = _error_body(exc.content)
    reasons = [str(e.get("reason", "")) for e in error.get("errors", [])]
    message = str(error.get("message") or exc.reason or f"HTTP {status}")
    where: dict[str, Any] = {"region": region, "zone": zone}
    if any(r in _QUOTA_REASONS for r in reasons):
        return _quota_error(message, _quota_names([error]), region, zone, "quotaExceeded")
    if status == 429 or status >= 500 or any(r in _RETRY_REASONS for r in reasons):
        code = reasons[0] if reasons and reasons[0] else str(status)
        return ProvisioningError(PROVIDER, message, **where, scope=Scope.RETRY, code=code)
    if status in (401, 403):
        return credentials_error(f"Compute Engine refused the request ({message})", _first(reasons))
    if status == 404:
        return ProvisioningError(PROVIDER, message, **where, code=NOT_FOUND)
    if status == 409:
        return ProvisioningError(PROVIDER, message, **where, code=ALREADY_EXISTS)
    return ProvisioningError(PROVIDER, message, **where, code=_first(reasons) or str(status))


def _quota_error(
    message: str, names: list[str], region: str | None, zone: str | None, code: str
) -> QuotaError:
    """A quota over all regions (``GPUS_ALL_REGIONS``) rules out the cloud; any other quota is
    per region."""
    in_message = _ALL_REGIONS.findall(message.upper().replace("-", "_"))
    everywhere = next((n for n in [*names, *in_message] if n.endswith("_ALL_REGIONS")), None)
    if everywhere is not None:
        return QuotaError(PROVIDER, message, scope=Scope.CLOUD, code=code, quota=everywhere)
    quota = _first(names)
    return QuotaError(
        PROVIDER, message, region=region, zone=zone, scope=Scope.REGION, code=code, quota=quota
    )


def _quota_names(errors: list[Mapping[str, Any]]) -> list[str]:
    """The quota metrics an error names: ``errorDetails[].quotaInfo.metricName`` (e.g.
    ``compute.googleapis.com/nvidia_t4_gpus``) or the message's "Quota 'NVIDIA_T4_GPUS'"."""
    return list(dict.fromkeys(_names_in(errors)))


def _names_in(errors: list[Mapping[str, Any]]) -> Iterator[str]:
    for error in errors:
        for detail in error.get("errorDetails", []):
            metric = str(detail.get("quotaInfo", {}).get("metricName", ""))
            if metric:
                yield metric.rsplit("/", 1)[-1].upper().replace("-", "_")
        for found in _QUOTA_IN_MESSAGE.findall(str(error.get("message", ""))):
            yield found.upper().replace("-", "_")


def _error_body(content: bytes) -> Mapping[str, Any]:
    try:
        data = json.loads(content.decode("utf-8", "replace"))
    except ValueError:
        return {}
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else {}


def _first(values: list[str]) -> str | None:
    return next((v for v in values if v), None)
