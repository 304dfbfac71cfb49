"""The one exception tree of cherrypick.

::

    CherrypickError                      root: catch this to catch everything we raise
    ├── InputError                       the user's input is wrong (exit code 2)
    │   ├── ValidationError              a file's content is wrong: file, line, field
    │   ├── UnknownNameError             a registry has no such name: lists the known ones
    │   └── HopelessJobError             the model says no candidate can run the job as asked
    ├── ProvisioningError                a provider could not give us a machine (its ``scope``)
    │   ├── CapacityError                ... because the cloud had none there (try elsewhere)
    │   │   └── QuotaError               ... because the account's quota is used up there
    │   └── CredentialsError             ... because the cloud refused who we are (exit code 2)
    ├── WorkloadError                    the workload failed on the machine
    ├── RunnerError                      a command could not be run on a machine
    │   ├── UnreachableError             ... the machine did not answer within the connect limit
    │   ├── HostKeyError                 ... its host key is not the one known: never accepted
    │   └── CommandTimeout               ... it ran past its limit (its process group is killed)
    ├── StoreError                       the trial store cannot be read or written
    │   └── NotAStoreError               ... the file given is not a store (exit code 2)
    └── SearchInterrupted                the user stopped a search (state is saved)

The CLI maps them to one-line messages and exit codes in one place (``cherrypick.cli``).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

__all__ = [
    "CapacityError",
    "CherrypickError",
    "CommandTimeout",
    "CredentialsError",
    "HopelessJobError",
    "HostKeyError",
    "InputError",
    "ProvisioningError",
    "QuotaError",
    "Scope",
    "SearchInterrupted",
    "NotAStoreError",
    "RunnerError",
    "StoreError",
    "UnknownNameError",
    "UnreachableError",
    "ValidationError",
    "WorkloadError",
]


class CherrypickError(Exception):
    """Root of every error cherrypick raises on purpose."""

    exit_code = 1


class InputError(CherrypickError):
    """Something the user gave us is wrong; they can fix it."""

    exit_code = 2


class ValidationError(InputError):
    """A file (table, catalog, search file) has a bad value.

    ``line`` is the 1-based line in the file (the header is line 1) when known.
    """

    def __init__(
        self, source: str, message: str, *, line: int | None = None, field: str | None = None
    ) -> None:
        self.source = source
        self.line = line
        self.field = field
        self.message = message
        where = source
        if line is not None:
            where += f", line {line}"
        if field is not None:
            where += f", field '{field}'"
        super().__init__(f"{where}: {message}")


class HopelessJobError(InputError):
    """Before any trial, the performance model says no candidate can do the job as asked: none
    fits it in memory, or none has even the stop rule's ``min_chance`` of meeting the deadline
    (or cost cap). ``--force`` searches anyway."""


class UnknownNameError(InputError):
    """A name was looked up in a registry that does not have it."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        self.kind = kind
        self.name = name
        self.known = sorted(known)
        super().__init__(f"unknown {kind} '{name}'; known: {', '.join(self.known) or '(none)'}")


class Scope(StrEnum):
    """How far a provisioning error reaches, as the provider module classified it: the failover
    blocks that much for the rest of the search (``retry``: nothing; the call is worth repeating
    after a pause, which the provider does itself)."""

    ZONE = "zone"
    REGION = "region"
    CLOUD = "cloud"
    RETRY = "retry"


class ProvisioningError(CherrypickError):
    """A provider failed to launch, reach or terminate machines. ``scope`` says what else the
    same error rules out (None: only this one call); ``code`` is the cloud's own error code."""

    default_scope: Scope | None = None

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        region: str | None = None,
        zone: str | None = None,
        scope: Scope | None = None,
        code: str | None = None,
    ) -> None:
        self.provider = provider
        self.region = region
        self.zone = zone
        self.scope = scope if scope is not None else self.default_scope
        self.code = code
        where = provider if region is None else f"{provider}/{region}"
        if zone is not None:
            where += f"/{zone}"
        super().__init__(f"{where}: {message}")


class CapacityError(ProvisioningError):
    """The cloud has no capacity for the requested machines there right now (scope ``zone`` by
    default: the next placement may have some). ``retry_s``: the machines are held by this
    search's own trials and free up soon, so wait that long and ask again (inventory hosts)."""

    default_scope = Scope.ZONE

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        region: str | None = None,
        zone: str | None = None,
        scope: Scope | None = None,
        code: str | None = None,
        retry_s: float | None = None,
    ) -> None:
        super().__init__(provider, message, region=region, zone=zone, scope=scope, code=code)
        self.retry_s = retry_s


class QuotaError(CapacityError):
    """The account may not run that many of these machines there (scope ``region`` by default;
    ``cloud`` for a quota over all regions). ``quota`` names the quota to raise."""

    default_scope = Scope.REGION

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        region: str | None = None,
        zone: str | None = None,
        scope: Scope | None = None,
        code: str | None = None,
        quota: str | None = None,
    ) -> None:
        super().__init__(provider, message, region=region, zone=zone, scope=scope, code=code)
        self.quota = quota


class CredentialsError(ProvisioningError):
    """The cloud does not accept our credentials or lets them do too little: no placement of
    that cloud can work, so the search stops at once with the advice to run ``doctor``."""

    default_scope = Scope.CLOUD
    exit_code = 2


class WorkloadError(CherrypickError):
    """The workload cannot run, or exited badly on a machine."""


class RunnerError(CherrypickError):
    """A command could not be run on a machine; ``where`` names the machine."""

    def __init__(self, where: str, message: str) -> None:
        self.where = where
        super().__init__(f"{where}: {message}")


class UnreachableError(RunnerError):
    """The machine did not accept a connection within the connect limit (or dropped it)."""


class HostKeyError(RunnerError):
    """The machine's host key differs from the one known for it (a possible impostor)."""


class CommandTimeout(RunnerError):
    """A command ran past its time limit; its whole process group was killed."""


class StoreError(CherrypickError):
    """The trial store is unreadable, of another search, or cannot be written."""


class NotAStoreError(StoreError):
    """The file given as a trial store is not one (empty, another database, not SQLite)."""

    exit_code = 2


class SearchInterrupted(CherrypickError):
    """The user interrupted a search; instances were terminated and trials saved."""

    exit_code = 130
