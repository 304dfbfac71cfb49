"""Registries of named plugins (providers, workloads, strategies).

Built-in entries are registered in code; third parties add theirs through the entry-point group
named by the registry (``cherrypick.providers``, ``cherrypick.workloads``,
``cherrypick.strategies``).
Entry points are loaded only when a name is not found among the built-ins, so start-up stays fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from cherrypick.errors import UnknownNameError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories; an unknown name raises :class:`UnknownNameError`."""

    def __init__(self, kind: str, group: str) -> None:
        self.kind = kind
        self.group = group
        self._factories: dict[str, Callable[..., T]] = {}
        self._lazy: dict[str, str] = {}
        self._plugins_loaded = False

    def register(self, name: str, factory: Callable[..., T]) -> Callable[..., T]:
        self._factories[name] = factory
        return factory

    def register_lazy(self, name: str, target: str) -> None:
        """Register ``module:attr``, imported on first use (keeps heavy SDKs out of start-up)."""
        self._lazy[name] = target

    def names(self) -> list[str]:
        self._load_plugins()
        return sorted({*self._factories, *self._lazy})

    def get(self, name: str) -> Callable[..., T]:
        if name not in self._factories and name not in self._lazy:
            self._load_plugins()
        if name in self._factories:
            return self._factories[name]
        if name in self._lazy:
            module, _, attr = self._lazy[name].partition(":")
            factory: Callable[..., T] = getattr(importlib.import_module(module), attr)
            self._factories[name] = factory
            return factory
        raise UnknownNameError(self.kind, name, self.names())

    def create(self, name: str, *args: object, **kwargs: object) -> T:
        return self.get(name)(*args, **kwargs)

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for ep in entry_points(group=self.group):
            if ep.name not in self._factories:
                self._lazy.setdefault(ep.name, ep.value)
