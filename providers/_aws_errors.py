"""The AWS provider's error classification: every boto3 error is turned, here and only here,
into a cherrypick error with a scope that the failover reads.

Error codes are EC2's (API reference, "Error codes for the Amazon EC2 API"), STS's and Service
Quotas'; botocore raises them as ``ClientError`` with ``response["Error"]["Code"]``. Its own
exceptions (no credentials, a connection that failed) carry no code and are matched by class.

========================================================  ================  ===============
code                                                      class             scope
========================================================  ================  ===============
InsufficientInstanceCapacity, Unsupported                 CapacityError     zone
VcpuLimitExceeded, MaxSpotInstanceCountExceeded,          QuotaError        region
InstanceLimitExceeded
AuthFailure, UnauthorizedOperation, InvalidClientTokenId,  CredentialsError  cloud
ExpiredToken, SignatureDoesNotMatch, no credentials
RequestLimitExceeded, InternalError, Unavailable,         ProvisioningError retry
throttling, any other 5xx, a connection that failed
anything else                                             ProvisioningError (none)
========================================================  ================  ===============
"""

from __future__ import annotations

from cherrypick.errors import (
    CapacityError,
    CredentialsError,
    ProvisioningError,
    QuotaError,
    Scope,
)

__all__ = ["DOCTOR_ADVICE", "GONE_CODES", "classify", "error_code"]

PROVIDER = "aws"
ZONE_CAPACITY = frozenset({"InsufficientInstanceCapacity", "Unsupported"})
REGION_QUOTA = frozenset(
    {"VcpuLimitExceeded", "MaxSpotInstanceCountExceeded", "InstanceLimitExceeded"}
)
CREDENTIALS = frozenset(
    {
        "AuthFailure",
        "UnauthorizedOperation",
        "InvalidClientTokenId",
        "ExpiredToken",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
    }
)
TRANSIENT = frozenset(
    {
        "RequestLimitExceeded",
        "InternalError",
        "InternalFailure",
        "Unavailable",
        "ServiceUnavailable",
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
    }
)
#: Codes that say an instance is not there (never was, or is long gone): terminating it is done.
GONE_CODES = frozenset({"InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"})
DOCTOR_ADVICE = "run 'cherrypick doctor --provider aws'"


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ``ClientError``, else None."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    code = response.get("Error", {}).get("Code")
    return str(code) if code else None


def classify(
    exc: Exception, *, region: str | None, zone: str | None = None, quota: str | None = None
) -> ProvisioningError | None:
    """``exc`` as a cherrypick error (see the module docstring), or None when it is not an AWS
    error at all (the caller re-raises it as it is). ``quota`` names the quota a quota error
    is about (the instance family's vCPU quota)."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        return _from_code(exc, region=region, zone=zone, quota=quota)
    if isinstance(exc, BotoCoreError):
        return _from_botocore(exc, region=region, zone=zone)
    return None


def _from_code(
    exc: Exception, *, region: str | None, zone: str | None, quota: str | None
) -> ProvisioningError:
    code = error_code(exc) or "Unknown"
    message = f"{code}: {_message(exc)}"
    if code in ZONE_CAPACITY:
        return CapacityError(PROVIDER, message, region=region, zone=zone, code=code)
    if code in REGION_QUOTA:
        return QuotaError(PROVIDER, message, region=region, zone=zone, code=code, quota=quota)
    if code in CREDENTIALS:
        return CredentialsError(PROVIDER, f"{message}; {DOCTOR_ADVICE}", code=code)
    if code in TRANSIENT or _status(exc) >= 500:
        return ProvisioningError(
            PROVIDER, message, region=region, zone=zone, scope=Scope.RETRY, code=code
        )
    return ProvisioningError(PROVIDER, message, region=region, zone=zone, code=code)


def _from_botocore(exc: Exception, *, region: str | None, zone: str | None) -> ProvisioningError:
    from botocore import exceptions as errors

    missing = (
        errors.NoCredentialsError,
        errors.PartialCredentialsError,
        errors.CredentialRetrievalError,
        errors.TokenRetrievalError,
        errors.NoAuthTokenError,
        errors.SSOError,
    )
    if isinstance(exc, missing):
        message = f"no usable AWS credentials ({exc}); {DOCTOR_ADVICE}"
        return CredentialsError(PROVIDER, message, code=type(exc).__name__)
    scope = (
        Scope.RETRY if isinstance(exc, errors.ConnectionError | errors.HTTPClientError) else None
    )
    return ProvisioningError(PROVIDER, str(exc), region=region, zone=zone, scope=scope)


def _message(exc: Exception) -> str:
    response = getattr(exc, "response", {})
    return str(response.get("Error", {}).get("Message") or exc)


def _status(exc: Exception) -> int:
    response = getattr(exc, "response", {})
    return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
