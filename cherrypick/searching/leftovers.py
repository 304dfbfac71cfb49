"""What this tool launched or reserved that no live search owns, and ending it (``cherrypick
cleanup``).

Two sources: trial stores (machines not known to be terminated, launches asked for and not known
to be gone, reserved inventory hosts) and providers' own listings by the tags every machine
carries. A store whose search beat its heartbeat lately (and, on this host, whose process is
alive) is live: its machines are its own business and are left alone.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cherrypick.errors import CherrypickError, InputError, ProvisioningError
from cherrypick.providers.base import (
    CREATED_BY,
    TAG_CREATED_BY,
    TAG_SEARCH,
    CloudOptions,
    InstanceState,
    Provider,
    provider_registry,
)
from cherrypick.store import TrialStore

__all__ = [
    "Leftover",
    "StoreScan",
    "cleanup_searches",
    "find_leftovers",
    "scan_store",
    "terminate_leftovers",
]

#: A search that has not beaten its heartbeat for this long is taken for dead (it beats every
#: 30 s; a busy controller may be late once or twice).
STALE_S = 120.0


@dataclass(frozen=True)
class Leftover:
    """One machine or reserved host that may still run (or cost) without a search owning it."""

    provider: str
    region: str
    instance_id: str
    source: str  # the store it was found in, or "tags" for a provider listing
    trial_id: int | None = None

    def describe(self) -> str:
        trial = "" if self.trial_id is None else f" (trial {self.trial_id})"
        return f"{self.provider} {self.region} {self.instance_id}{trial}, from {self.source}"


@dataclass
class StoreScan:
    """A store's leftovers, the providers able to end them, and whether a live search owns it."""

    path: Path
    live_owner: str | None
    leftovers: list[Leftover]
    providers: dict[str, Provider]
    search_tag: str | None


def scan_store(path: Path, providers: Mapping[str, Provider] | None = None) -> StoreScan:
    """Read ``path``'s leftovers; ``providers`` (by name) override the ones its search used."""
    with TrialStore(path, create=False) as store:
        owner = _live_owner(store)
        found = _from_store(store, str(path))
        spec = store.spec() if store.has_search() else {}
        launched = {x.provider for x in store.launches() if x.provider != "ssh"}
    names = {p.provider for p in found} | launched
    made = _providers_of(spec, path, names, providers or {})
    found += _from_launch_tags(path, made)
    tag = _search_tag(spec)
    return StoreScan(path, owner, _unique(found), made, tag)


def find_leftovers(
    stores: Sequence[Path], providers: Mapping[str, Provider]
) -> tuple[list[StoreScan], list[Leftover]]:
    """Every store's scan, and what ``providers`` list by tag that no live store owns."""
    scans = [scan_store(path, providers) for path in stores]
    live = {s.search_tag for s in scans if s.live_owner is not None and s.search_tag}
    known = {(x.provider, x.instance_id) for s in scans for x in s.leftovers}
    tagged: list[Leftover] = []
    for name, provider in providers.items():
        for machine in provider.list_launched({TAG_CREATED_BY: CREATED_BY}):
            if machine.tags.get(TAG_SEARCH) in live or (name, machine.instance_id) in known:
                continue
            tagged.append(Leftover(name, machine.region, machine.instance_id, "tags"))
    return scans, tagged


def terminate_leftovers(
    leftovers: Iterable[Leftover], providers: Mapping[str, Provider], store: Path | None = None
) -> list[str]:
    """End the leftovers (confirmed by a query) and record it in ``store``; one line each."""
    lines: list[str] = []
    groups: dict[tuple[str, str], list[Leftover]] = {}
    for item in leftovers:
        groups.setdefault((item.provider, item.region), []).append(item)
    everything = True
    for (name, region), items in groups.items():
        ids = [i.instance_id for i in items]
        provider = providers.get(name)
        gone = [] if provider is None else _end(provider, region, ids, lines)
        if provider is None:
            lines.append(f"cannot end {', '.join(ids)}: no provider '{name}' is configured")
        everything = everything and len(gone) == len(ids)
        if store is not None:
            _record(store, gone)
        lines += [f"terminated {name} {region} {i}" for i in gone]
    if store is not None and everything:
        _close_launches(store)  # only now: a launch of a machine still up must stay findable
    return lines


def cleanup_searches(scans: Iterable[StoreScan]) -> list[str]:
    """Delete what each stopped search made besides machines (key pairs, security groups,
    firewall rules); one line per deletion or failure."""
    lines: list[str] = []
    for scan in scans:
        if scan.live_owner is not None or scan.search_tag is None:
            continue
        for provider in scan.providers.values():
            try:
                lines += [f"deleted {d}" for d in provider.cleanup_search(scan.search_tag)]
            except CherrypickError as exc:
                lines.append(f"cannot delete {provider.name}'s resources of {scan.path}: {exc}")
    return lines


def _end(provider: Provider, region: str, ids: list[str], lines: list[str]) -> list[str]:
    try:
        provider.terminate_instances(region, ids)
        states = provider.query_instances(region, ids)
    except ProvisioningError as exc:
        lines.append(f"cannot end {', '.join(ids)}: {exc}")
        return []
    left = [i for i, s in states.items() if s != InstanceState.TERMINATED]
    if left:
        lines.append(f"still not terminated: {', '.join(left)} (run cleanup again shortly)")
    return [i for i in ids if i not in left]


def _record(path: Path, gone: Sequence[str]) -> None:
    with TrialStore(path, create=False) as store:
        for instance_id in gone:
            store.set_instance_state(instance_id, "terminated")


def _close_launches(path: Path) -> None:
    with TrialStore(path, create=False) as store:
        for launch in store.open_launches():
            store.set_launch_state(launch.cluster_name, "terminated")


def _live_owner(store: TrialStore) -> str | None:
    """Who runs the store's search now, or None if nobody does."""
    if not store.has_search() or store.status() != "running":
        return None
    owner, beat = store.last_heartbeat()
    if owner is None or beat is None or time.time() - beat > STALE_S:
        return None
    host, _, pid = owner.rpartition(":")
    if host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid)):
        return None
    return owner


def _pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, killed but not reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (not Linux): the signal's answer stands
    return stat.rpartition(")")[2].split()[0] != "Z"


def _from_store(store: TrialStore, source: str) -> list[Leftover]:
    found = [
        Leftover(r.provider, r.region, r.instance_id, source, r.trial_id)
        for r in store.live_instances()
    ]
    found += [
        Leftover("ssh", "inventory", f"ssh:{host}", source, trial)
        for host, trial in store.reservations("ssh").items()
    ]
    return found


def _from_launch_tags(path: Path, providers: Mapping[str, Provider]) -> list[Leftover]:
    """Machines of launches a crash interrupted before the store recorded them."""
    with TrialStore(path, create=False) as store:
        launches = store.open_launches()
    found = []
    for launch in launches:
        provider = providers.get(launch.provider)
        if provider is None:
            continue
        for m in provider.list_launched(launch.tags):
            found.append(
                Leftover(launch.provider, m.region, m.instance_id, str(path), launch.trial_id)
            )
    return found


def _providers_of(
    spec: Mapping[str, Any], path: Path, names: set[str], given: Mapping[str, Provider]
) -> dict[str, Provider]:
    """The providers that can end a store's leftovers: the given ones, else its search's."""
    made: dict[str, Provider] = {n: given[n] for n in names if n in given}
    for name in sorted(names - made.keys()):
        if spec.get("dry_run"):
            made[name] = _Gone(name)  # simulated machines died with their process
        elif name == "ssh":
            made[name] = _inventory_provider(spec, path)
        else:
            try:
                options = dict(spec.get("clouds", {}).get(name) or {})
                made[name] = provider_registry.create(name, CloudOptions(**options))
            except CherrypickError as exc:
                raise InputError(f"{path}: cannot reach provider '{name}': {exc}") from None
    return made


def _inventory_provider(spec: Mapping[str, Any], path: Path) -> Provider:
    from cherrypick.providers.inventory import load_inventory

    inventory = spec.get("inventory")
    if not inventory:
        raise InputError(f"{path}: the store reserves ssh hosts but names no inventory")
    store = TrialStore(path, create=False)  # kept open by the provider: it releases hosts
    return provider_registry.create("ssh", load_inventory(str(inventory)), store)


def _search_tag(spec: Mapping[str, Any]) -> str | None:
    if not spec:
        return None
    from cherrypick.searching.setup import search_tag

    return search_tag(spec, int(spec.get("seed", 0)))


def _unique(found: list[Leftover]) -> list[Leftover]:
    seen: dict[tuple[str, str], Leftover] = {}
    for item in found:
        seen.setdefault((item.provider, item.instance_id), item)
    return list(seen.values())


class _Gone(Provider):
    """The simulated provider of a dead process: its machines ended with it."""

    minimum_billed_s = 0.0

    def __init__(self, name: str) -> None:
        self.name = name

    def run_instances(self, request: Any) -> Any:
        raise ProvisioningError(self.name, "cannot launch: cleanup only")

    def wait_instances(self, record: Any, timeout_s: float) -> Any:
        raise ProvisioningError(self.name, "cannot wait: cleanup only")

    def query_instances(self, region: str, instance_ids: Sequence[str]) -> dict[str, InstanceState]:
        return dict.fromkeys(instance_ids, InstanceState.TERMINATED)

    def terminate_instances(self, region: str, instance_ids: Sequence[str]) -> None:
        return None

    def list_launched(self, tags: Mapping[str, str]) -> Sequence[Any]:
        return []
