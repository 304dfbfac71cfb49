"""Runners: how the search executes commands and moves files on a machine (SSH or local).
Providers find the machines; runners use them. Importing this costs nothing: paramiko loads on use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cherrypick.runners.base import CommandResult, Runner
from cherrypick.runners.job import RemoteJob, kill_all_in
from cherrypick.runners.keys import SearchKey
from cherrypick.runners.local import LocalRunner

if TYPE_CHECKING:
    from cherrypick.providers.base import Instance
    from cherrypick.runners.ssh import SSHRunner

__all__ = [
    "CommandResult",
    "LocalRunner",
    "RemoteJob",
    "Runner",
    "SSHRunner",
    "SearchKey",
    "kill_all_in",
    "runner_for",
]


def runner_for(
    instance: Instance,
    *,
    key_file: str | None = None,
    on_new_host_key: Callable[[str], None] | None = None,
    connect_limit_s: float = 600.0,
) -> Runner:
    """The runner that reaches ``instance``: local for the ``local`` transport, else SSH.

    The instance's own key file (an inventory host's) wins over ``key_file`` (the search's).
    """
    if instance.extra.get("transport") == "local":
        return LocalRunner()
    from cherrypick.runners.ssh import SSHRunner

    return SSHRunner(
        instance.address,
        instance.ssh_port,
        instance.ssh_user,
        instance.key_file or key_file,
        instance.host_key,
        on_new_host_key=on_new_host_key,
        connect_limit_s=connect_limit_s,
    )


def __getattr__(name: str) -> Any:
    """``SSHRunner`` is imported on first use, so paramiko loads only when SSH is used."""
    if name == "SSHRunner":
        from cherrypick.runners.ssh import SSHRunner

        return SSHRunner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
