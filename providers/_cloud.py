"""What the AWS, GCP and Azure providers share: retrying transient API errors with backoff, the
caller's address for the SSH rule, the machine's self-destruct backstop, and resource names.

Nothing here imports a cloud SDK.
"""

from __future__ import annotations

import ipaddress
import math
import random
import time
import urllib.request
from collections.abc import Callable
from typing import TypeVar

from cherrypick.errors import InputError, ProvisioningError, Scope

__all__ = [
    "RETRY_ATTEMPTS",
    "caller_cidr",
    "resource_name",
    "retrying",
    "self_destruct_script",
]

T = TypeVar("T")

#: How many times a transient error (throttling, a 5xx) is tried before it is given up.
RETRY_ATTEMPTS = 6
#: The public services that echo the caller's address, tried in order.
ECHO_URLS = ("https://checkip.amazonaws.com", "https://api.ipify.org")


def retrying(
    call: Callable[[], T],
    classify: Callable[[Exception], ProvisioningError | None],
    *,
    sleep: Callable[[float], None] = time.sleep,
    attempts: int = RETRY_ATTEMPTS,
    base_s: float = 1.0,
) -> T:
    """``call()``, repeated with jittered exponential backoff while ``classify`` says its error
    is of scope ``retry``; any other classified error is raised as classified, an unclassified
    one as it is. The last transient error is raised with scope ``zone``: the placement did not
    answer, another may."""
    for attempt in range(attempts):
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - classify decides; the rest is re-raised
            error = classify(exc)
            if error is None:
                raise
            if error.scope is not Scope.RETRY:
                raise error from exc
            if attempt == attempts - 1:
                error.scope = Scope.ZONE
                raise error from exc
            sleep(min(30.0, base_s * 2**attempt) * (0.5 + random.random() / 2))
    raise AssertionError("unreachable")  # pragma: no cover


def caller_cidr(
    configured: str | None,
    fetch: Callable[[str], str] | None = None,
    setting: str = "clouds.<provider>.ssh_cidr",
) -> str:
    """The network allowed to reach port 22: ``configured`` if given (checked), else the
    caller's public address as /32, asked of a public echo service."""
    if configured is not None:
        try:
            return str(ipaddress.ip_network(configured, strict=False))
        except ValueError:
            raise InputError(f"{setting}: {configured!r} is not an address or network") from None
    get = fetch if fetch is not None else _fetch
    for url in ECHO_URLS:
        try:
            address = ipaddress.ip_address(get(url).strip())
        except (OSError, ValueError):
            continue
        return f"{address}/{address.max_prefixlen}"
    raise InputError(
        f"cannot find this machine's public address (asked {', '.join(ECHO_URLS)}); set {setting}"
        " to the network allowed to reach the machines' SSH port, e.g. 203.0.113.7/32"
    )


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - fixed https URLs
        return str(answer.read().decode("ascii", "replace"))


def self_destruct_script(max_life_s: float) -> str:
    """A boot script that powers the machine off ``max_life_s`` after boot (rounded up to a
    minute): with shutdown meaning terminate (AWS) or a deleted VM (GCP, Azure), a machine whose
    controller died ends itself."""
    minutes = max(1, math.ceil(max_life_s / 60.0))
    return f"#!/bin/sh\nshutdown -h +{minutes} 'cherrypick: trial time limit'\n"


def resource_name(search_tag: str, kind: str, limit: int = 63) -> str:
    """A cloud resource's name for a search (lower case, digits and dashes, within ``limit``)."""
    name = f"{search_tag}-{kind}".lower()
    cleaned = "".join(ch if ch.isalnum() or ch == "-" else "-" for ch in name)
    return cleaned[:limit].rstrip("-")
