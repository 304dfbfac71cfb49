"""The inventory file: machines you already own or rent by the month, offered to a search.

Example::

    defaults: {user: root, key_file: ~/.ssh/id_ed25519, port: 22, workdir: /tmp, python: python3}
    hosts:
      - name: gpu-box-1              # unique: letters, digits, '.', '_', '-'
        address: 10.0.0.5            # or "local": this machine, no SSH
        user: ubuntu
        host_key: "ssh-ed25519 AAAA..."    # or known_hosts: ~/.ssh/known_hosts
        gpu: A100                    # a GPU of configs/gpus.yaml, or none for a CPU-only host
        gpus: 8
        vcpus: 96
        memory_gib: 1152
        price_per_hour: 0            # 0 for a machine you own
        labels: {rack: a}
        group: pool-a                # optional: the offering's region

Hosts with the same group, hardware, price and labels form one :class:`Offering` (provider
``ssh``); a candidate of N nodes takes N free hosts of one offering. An SSH host's key is pinned
(``host_key`` or a ``known_hosts`` entry): an inventory never trusts a key on first use. Every
mistake is a :class:`~cherrypick.errors.ValidationError` naming the file, the line and the field
path (``hosts.2.port``). Relative ``key_file`` and ``known_hosts`` paths are relative to the
inventory file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal

from cherrypick.providers.base import Candidate, Offering
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticError

from cherrypick._text import field_message, read_text, yaml_with_lines
from cherrypick.errors import InputError, ValidationError

__all__ = [
    "CPU_GPU",
    "LOCAL",
    "Host",
    "Inventory",
    "load_inventory",
    "parse_inventory",
    "require_priced",
]

#: The ``address`` of a host that is this machine (commands run without SSH).
LOCAL = "local"
#: The ``gpu`` of a CPU-only host; such a host has ``gpus: 0`` (``CandidateRecord`` says "no GPU").
CPU_GPU = "none"
#: The region of offerings whose hosts name no group.
DEFAULT_REGION = "inventory"

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
_ADDRESS = r"^[A-Za-z0-9][A-Za-z0-9.:_-]*$"
# Paths reach a shell on the host; keep them to characters no shell reads specially.
_PATH = r"^[A-Za-z0-9._/~+-]+$"
_ABSOLUTE = r"^/[A-Za-z0-9._/+-]*$"
# A program name or path: reaches the host's shell quoted, where ``~`` would not be expanded.
_PROGRAM = r"^[A-Za-z0-9._/+-]+$"
_PATTERNS = {
    _NAME: "letters, digits, '.', '_' and '-', starting with a letter or digit",
    _ADDRESS: "a host name, an IP address, or local",
    _PATH: "a path of letters, digits and . _ / ~ + -",
    _ABSOLUTE: "an absolute path of letters, digits and . _ / + -",
    _PROGRAM: "a program name or path of letters, digits and . _ / + - (no ~: it is not expanded)",
}
_HOST_KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-", "ssh-rsa", "sk-")

_Name = Annotated[str, Field(pattern=_NAME, max_length=64)]
_Port = Annotated[int, Field(strict=True, ge=1, le=65535)]
_Count = Annotated[int, Field(strict=True, ge=0)]
_Positive = Annotated[int, Field(strict=True, ge=1)]
_Amount = Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)]
_Size = Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Defaults(_Model):
    user: _Name = "root"
    key_file: Annotated[str, Field(pattern=_PATH)] = "~/.ssh/id_ed25519"
    port: _Port = 22
    workdir: Annotated[str, Field(pattern=_ABSOLUTE)] = "/tmp"
    python: Annotated[str, Field(pattern=_PROGRAM)] = "python3"


class _HostEntry(_Model):
    name: _Name
    address: Annotated[str, Field(pattern=_ADDRESS, max_length=255)]
    port: _Port | None = None
    user: _Name | None = None
    key_file: Annotated[str, Field(pattern=_PATH)] | None = None
    host_key: str | None = None
    known_hosts: Annotated[str, Field(pattern=_PATH)] | None = None
    workdir: Annotated[str, Field(pattern=_ABSOLUTE)] | None = None
    python: Annotated[str, Field(pattern=_PROGRAM)] | None = None
    gpu: str
    gpus: _Count
    vcpus: _Positive
    memory_gib: _Size
    price_per_hour: _Amount
    labels: dict[_Name, _Name] = Field(default_factory=dict)
    group: _Name | None = None
    # What the optimiser's features need of every offering (catalog columns of the same names).
    interconnect: Literal["pcie", "nvlink", "nvswitch"] = "pcie"
    network_gbps: _Size = 10.0


class _InventoryFile(_Model):
    defaults: _Defaults = Field(default_factory=_Defaults)
    hosts: list[_HostEntry] = Field(min_length=1)


@dataclass(frozen=True)
class Host:
    """One inventory host with its defaults filled in, key file expanded and host key resolved.

    ``key_file`` and ``host_key`` are None for a local host; ``region`` is its group (or
    ``inventory``), the region of its offering.
    """

    name: str
    address: str
    port: int
    user: str
    key_file: str | None
    host_key: str | None
    workdir: str
    python: str
    gpu: str
    gpus: int
    vcpus: int
    memory_gib: float
    price_per_hour: float
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    group: str | None = None
    interconnect: str = "pcie"
    network_gbps: float = 10.0

    @property
    def local(self) -> bool:
        return self.address == LOCAL

    @property
    def region(self) -> str:
        return self.group or DEFAULT_REGION

    def hardware(self) -> tuple[Any, ...]:
        """What hosts of one offering share (everything a trial's result or price depends on)."""
        return (
            self.region,
            self.gpu,
            self.gpus,
            self.vcpus,
            self.memory_gib,
            self.price_per_hour,
            tuple(sorted(self.labels.items())),
            self.interconnect,
            self.network_gbps,
        )


@dataclass(frozen=True)
class Inventory:
    """The validated hosts of one inventory file, in file order."""

    source: str
    hosts: tuple[Host, ...]
    gpu_memory_gib: Mapping[str, float] = field(default_factory=dict, hash=False)

    def host(self, name: str) -> Host | None:
        return next((h for h in self.hosts if h.name == name), None)

    def offerings(self) -> list[Offering]:
        """The hosts grouped into offerings: one per distinct :meth:`Host.hardware`."""
        groups: dict[tuple[Any, ...], list[Host]] = {}
        for host in self.hosts:
            groups.setdefault(host.hardware(), []).append(host)
        taken: set[tuple[str, str]] = set()
        offerings = []
        for members in groups.values():
            name = _instance_type(members[0])
            if (members[0].region, name) in taken:  # same hardware name, other price or network
                name = f"{name}-{members[0].name}"
            taken.add((members[0].region, name))
            offerings.append(self._offering(members, name))
        return offerings

    def candidates(self, max_nodes: int | None = None) -> list[Candidate]:
        """Each offering times 1..(its host count, at most ``max_nodes``) nodes."""
        return [
            Candidate(o, n)
            for o in self.offerings()
            for n in range(1, len(o.extra["hosts"]) + 1)
            if max_nodes is None or n <= max_nodes
        ]

    def _offering(self, members: Sequence[Host], instance_type: str) -> Offering:
        first = members[0]
        extra = {
            "hosts": tuple(h.name for h in members),
            "labels": MappingProxyType(dict(first.labels)),
            "threads": first.vcpus,
            "network_gbps": first.network_gbps,
        }
        return Offering(
            provider="ssh",
            region=first.region,
            instance_type=instance_type,
            vcpus=first.vcpus,
            memory_gib=first.memory_gib,
            gpu=first.gpu,
            gpus_per_node=first.gpus,
            gpu_memory_gib=self.gpu_memory_gib.get(first.gpu, 0.0),
            interconnect=first.interconnect,
            price_per_hour=first.price_per_hour,
            extra=MappingProxyType(extra),
        )


def _instance_type(host: Host) -> str:
    """``A100x8-96cpu-1152gib`` (``cpu-...`` without GPU), then its labels: ``-rack.a``."""
    gpus = "cpu" if host.gpus == 0 else f"{host.gpu}x{host.gpus}"
    labels = "".join(f"-{k}.{v}" for k, v in sorted(host.labels.items()))
    return f"{gpus}-{host.vcpus}cpu-{host.memory_gib:g}gib{labels}"


def require_priced(inventory: Inventory, objective_kind: str) -> None:
    """Refuse a cost objective over hosts that are all free: every trial would cost 0 and the
    search could not tell the configurations apart."""
    if objective_kind == "cost" and all(h.price_per_hour == 0 for h in inventory.hosts):
        raise InputError(
            f"{inventory.source}: every host costs 0 per hour, so a cost objective cannot tell"
            " them apart; use objective: {kind: runtime}"
        )


def load_inventory(
    path: Path | str, gpu_memory_gib: Mapping[str, float] | None = None
) -> Inventory:
    """Read and validate an inventory file (see the module docstring).

    ``gpu_memory_gib`` maps the known GPU names to their memory (default: the bundled datasheets).
    """
    return parse_inventory(read_text(path, "inventory"), str(path), gpu_memory_gib)


def parse_inventory(
    text: str, source: str, gpu_memory_gib: Mapping[str, float] | None = None
) -> Inventory:
    """Validate an inventory's YAML ``text``; ``source`` names the file and anchors relative
    paths."""
    data, lines = yaml_with_lines(text, source)
    where = _Where(source, lines)
    if not isinstance(data, dict):
        raise where.error("expected a mapping with a 'hosts' list")
    try:
        parsed = _InventoryFile.model_validate(data)
    except PydanticError as exc:
        first = exc.errors()[0]
        raise where.error(field_message(first, _PATTERNS), tuple(first["loc"])) from None
    memory = _gpu_memory() if gpu_memory_gib is None else dict(gpu_memory_gib)
    base = Path(source).absolute().parent
    hosts = tuple(
        _host(entry, parsed.defaults, base, memory, where.at("hosts", i))
        for i, entry in enumerate(parsed.hosts)
    )
    _check_unique(hosts, where)
    return Inventory(source, hosts, MappingProxyType(memory))


def _gpu_memory() -> dict[str, float]:
    from cherrypick.catalog import load_gpus  # numpy and the datasheets: only when reading one

    return {name: spec.memory_gib for name, spec in load_gpus().items()}


@dataclass(frozen=True)
class _Where:
    """Turns a field path into an error naming the file, the line and the path."""

    source: str
    lines: Mapping[tuple[str, ...], int]
    prefix: tuple[str | int, ...] = ()

    def at(self, *path: str | int) -> _Where:
        return _Where(self.source, self.lines, self.prefix + path)

    def error(self, message: str, path: Sequence[str | int] = ()) -> ValidationError:
        full = tuple(str(p) for p in (*self.prefix, *path))
        line = next(
            (self.lines[full[:n]] for n in range(len(full), 0, -1) if full[:n] in self.lines), None
        )
        return ValidationError(self.source, message, line=line, field=".".join(full) or None)


def _host(
    entry: _HostEntry,
    defaults: _Defaults,
    base: Path,
    gpu_memory: Mapping[str, float],
    where: _Where,
) -> Host:
    _check_gpu(entry, gpu_memory, where)
    local = entry.address == LOCAL
    port = entry.port or defaults.port
    return Host(
        name=entry.name,
        address=entry.address,
        port=port,
        user=entry.user or defaults.user,
        key_file=None if local else _key_file(entry.key_file or defaults.key_file, base, where),
        host_key=None if local else _pinned_key(entry, port, base, where),
        workdir=entry.workdir or defaults.workdir,
        python=entry.python or defaults.python,
        gpu=entry.gpu,
        gpus=entry.gpus,
        vcpus=entry.vcpus,
        memory_gib=entry.memory_gib,
        price_per_hour=entry.price_per_hour,
        labels=MappingProxyType(dict(entry.labels)),
        group=entry.group,
        interconnect=entry.interconnect,
        network_gbps=entry.network_gbps,
    )


def _check_gpu(entry: _HostEntry, gpu_memory: Mapping[str, float], where: _Where) -> None:
    if entry.gpu != CPU_GPU and entry.gpu not in gpu_memory:
        known = ", ".join([*gpu_memory, CPU_GPU])
        raise where.error(f"unknown GPU '{entry.gpu}'; known: {known}", ("gpu",))
    if (entry.gpu == CPU_GPU) != (entry.gpus == 0):
        message = f"gpu: {CPU_GPU} goes with gpus: 0, and a GPU with gpus >= 1"
        raise where.error(message, ("gpus",))


def _resolve(path: str, base: Path) -> Path:
    expanded = Path(path).expanduser()
    return expanded if expanded.is_absolute() else base / expanded


def _key_file(path: str, base: Path, where: _Where) -> str:
    resolved = _resolve(path, base)
    if not resolved.is_file():
        raise where.error(f"no key file at {resolved}", ("key_file",))
    return str(resolved)


def _pinned_key(entry: _HostEntry, port: int, base: Path, where: _Where) -> str:
    key, known_hosts = entry.host_key, entry.known_hosts
    if known_hosts is not None and key is None:
        return _from_known_hosts(_resolve(known_hosts, base), entry.address, port, where)
    if key is None or known_hosts is not None:
        message = "an SSH host needs exactly one of host_key and known_hosts (keys are pinned)"
        raise where.error(message, ("host_key",))
    if not _is_public_key(key):
        raise where.error("not an OpenSSH public key ('ssh-ed25519 AAAA...')", ("host_key",))
    return " ".join(key.split()[:2])


def _is_public_key(text: str) -> bool:
    parts = text.split()
    if len(parts) < 2 or not parts[0].startswith(_HOST_KEY_TYPES):
        return False
    try:
        base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _from_known_hosts(path: Path, address: str, port: int, where: _Where) -> str:
    """The host's key in a known_hosts file (plain or hashed entries; ed25519 preferred)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise where.error(f"cannot read {path}: {exc}", ("known_hosts",)) from None
    name = address if port == 22 else f"[{address}]:{port}"
    keys = [key for patterns, key in _entries(text) if _matches(patterns, name)]
    if not keys:
        message = f"{path} has no key for {name} (add one with ssh-keyscan, or give host_key)"
        raise where.error(message, ("known_hosts",))
    return min(keys, key=lambda k: not k.startswith("ssh-ed25519"))


def _entries(text: str) -> list[tuple[str, str]]:
    """(host patterns, "type key") of each plain line; markers (@revoked, @cert-authority) are
    left out, so a revoked key or a CA is never taken as the host's own."""
    entries = []
    for line in text.splitlines():
        parts = line.split()
        if (
            len(parts) >= 3
            and not parts[0].startswith(("#", "@"))
            and _is_public_key(" ".join(parts[1:3]))
        ):
            entries.append((parts[0], f"{parts[1]} {parts[2]}"))
    return entries


def _matches(patterns: str, name: str) -> bool:
    if patterns.startswith("|1|"):
        return _hashed_match(patterns, name)
    return name in patterns.split(",")


def _hashed_match(entry: str, name: str) -> bool:
    """OpenSSH's HashKnownHosts form: ``|1|base64(salt)|base64(HMAC-SHA1(salt, name))``."""
    try:
        salt, digest = (base64.b64decode(p) for p in entry[3:].split("|", 1))
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(hmac.new(salt, name.encode(), hashlib.sha1).digest(), digest)


def _check_unique(hosts: Sequence[Host], where: _Where) -> None:
    seen: dict[str, int] = {}
    for i, host in enumerate(hosts):
        if host.name in seen:
            message = f"duplicate host name (also hosts.{seen[host.name]})"
            raise where.at("hosts", i).error(message, ("name",))
        seen[host.name] = i
    addresses: dict[tuple[str, int], str] = {}
    for i, host in enumerate(hosts):
        if host.local:
            continue  # local hosts share this machine on purpose (tests, a CPU pool)
        other = addresses.setdefault((host.address, host.port), host.name)
        if other != host.name:
            message = f"same address and port as host '{other}' (one machine, two names)"
            raise where.at("hosts", i).error(message, ("address",))
