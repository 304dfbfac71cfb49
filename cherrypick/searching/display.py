"""What a running search shows: the search loop and its trial threads send events, a display
turns them into lines (logs, CI) or a live table (a terminal).

The loop never formats text itself, so the same search reads the same in a log file and in a
terminal, and a test can feed events without running a search.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from cherrypick.units import format_duration

__all__ = [
    "Display",
    "LiveDisplay",
    "NullDisplay",
    "Phase",
    "PlainDisplay",
    "SearchStatus",
    "TrialEvent",
    "make_display",
]

#: How often the live table redraws: often enough for elapsed times to tick each second.
REFRESH_PER_SECOND = 4.0

#: Colour of a finished trial's status in the live display; any other status is a failure.
_STATUS_STYLES = {"ok": "green", "late": "yellow"}


class Phase(StrEnum):
    """Where a trial is, in the order a trial goes through them."""

    LAUNCHING = "launching"
    BOOTING = "booting"
    SETTING_UP = "setting up"
    RUNNING = "running"
    COLLECTING = "collecting"
    TERMINATING = "terminating"
    DONE = "done"


@dataclass(frozen=True)
class TrialEvent:
    """One trial's state as it changes; ``status`` and ``measured`` only on ``DONE``."""

    trial_id: int
    candidate: str
    phase: Phase
    elapsed_s: float
    cost_usd: float
    detail: str = ""
    status: str | None = None
    measured: str = ""


@dataclass(frozen=True)
class SearchStatus:
    """The whole search at a glance: the best so far, the spend and the trials left."""

    best: str
    spent_usd: float
    budget_usd: float | None
    trials_done: int
    trials_left: int


class Display(Protocol):
    """What the search loop calls. Trial threads call it too, so every method is thread-safe."""

    def trial(self, event: TrialEvent) -> None: ...

    def search(self, status: SearchStatus) -> None: ...

    def message(self, line: str) -> None: ...

    def close(self) -> None: ...


def _money(usd: float) -> str:
    return f"${usd:,.2f}"


def _trial_fields(event: TrialEvent) -> list[str]:
    """The columns of a trial's line; the third is the phase, or ``done <status>`` at the end."""
    state = str(event.phase)
    if event.phase is Phase.DONE and event.status:
        state = f"done {event.status}"
    fields = [
        f"trial {event.trial_id:>3}",
        event.candidate,
        state,
        format_duration(event.elapsed_s),
        _money(event.cost_usd),
    ]
    tail = event.measured if event.phase is Phase.DONE else event.detail
    return [*fields, tail] if tail else fields


def _trial_line(event: TrialEvent) -> str:
    return "  ".join(_trial_fields(event))


def _spend(status: SearchStatus) -> str:
    if status.budget_usd is None:
        return f"spent {_money(status.spent_usd)}"
    return f"spent {_money(status.spent_usd)} of {_money(status.budget_usd)}"


def _search_summary(status: SearchStatus) -> str:
    trials = f"trials {status.trials_done} done, {status.trials_left} left"
    return f"best {status.best}  {_spend(status)}  {trials}"


class NullDisplay:
    """Shows nothing: the Python API's default, where the caller reads the result instead."""

    def trial(self, event: TrialEvent) -> None:
        pass

    def search(self, status: SearchStatus) -> None:
        pass

    def message(self, line: str) -> None:
        pass

    def close(self) -> None:
        pass


class PlainDisplay:
    """One line per event, no colour and no cursor movement, so logs stay greppable."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._last_search = ""

    def trial(self, event: TrialEvent) -> None:
        self._write(_trial_line(event))

    def search(self, status: SearchStatus) -> None:
        """Print the status only when its text changes: the loop reports after every event."""
        line = f"search  {_search_summary(status)}"
        with self._lock:
            if line == self._last_search:
                return
            self._last_search = line
        self._write(line)

    def message(self, line: str) -> None:
        self._write(line)

    def close(self) -> None:
        with self._lock:
            self._stream.flush()

    def _write(self, line: str) -> None:
        # One write per line under the lock: threads never interleave halves of lines.
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()


@dataclass(frozen=True)
class _InFlight:
    """A trial's last event and when it started on our clock, so its elapsed time can tick."""

    event: TrialEvent
    started: float


class LiveDisplay:
    """A table of the trials in flight, redrawn in place, above a footer with the search status.

    Finished trials and messages are printed above the table and stay in the scrollback.
    ``console`` draws on a given Console instead of one made for ``stream`` (tests use one
    writing to a ``StringIO``); ``clock`` is in seconds, monotonic.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        console: Console | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._console = console if console is not None else Console(file=stream)
        self._clock = clock
        # Guards the state only; never held while calling rich, whose refresh thread takes its
        # own lock and then calls _render, which takes this one.
        self._lock = threading.Lock()
        # Serialises printing above the table, so two threads never move the cursor at once.
        self._print_lock = threading.Lock()
        self._in_flight: dict[int, _InFlight] = {}
        self._status: SearchStatus | None = None
        self._live = Live(
            get_renderable=self._render,
            console=self._console,
            refresh_per_second=REFRESH_PER_SECOND,
        )
        self._live.start()

    def trial(self, event: TrialEvent) -> None:
        """Update the trial's row; a finished trial leaves the table for a permanent line."""
        with self._lock:
            if event.phase is Phase.DONE:
                self._in_flight.pop(event.trial_id, None)
            else:
                started = self._clock() - event.elapsed_s
                self._in_flight[event.trial_id] = _InFlight(event, started)
        if event.phase is Phase.DONE:
            self._print(_finished_text(event))

    def search(self, status: SearchStatus) -> None:
        with self._lock:
            self._status = status

    def message(self, line: str) -> None:
        self._print(Text(line))

    def close(self) -> None:
        """Stop redrawing and leave the last table on screen; safe to call again, or after ^C."""
        self._live.stop()

    def _print(self, text: Text) -> None:
        # Text, not markup: a candidate or an error message may hold square brackets.
        with self._print_lock:
            self._live.console.print(text)

    def _render(self) -> Table:
        with self._lock:
            trials = sorted(self._in_flight.items())
            status = self._status
        now = self._clock()
        table = _trials_table(status)
        for trial_id, trial in trials:
            event = trial.event
            phase = Text(str(event.phase))
            if event.detail:
                phase.append(f"  {event.detail}", style="dim")
            elapsed = format_duration(max(0.0, now - trial.started))
            table.add_row(str(trial_id), event.candidate, phase, elapsed, _money(event.cost_usd))
        return table


def _trials_table(status: SearchStatus | None) -> Table:
    """An empty table of trials, captioned with the search status once there is one."""
    caption = _search_summary(status) if status is not None else None
    table = Table(caption=caption, caption_justify="left")
    table.add_column("trial", justify="right")
    table.add_column("configuration", no_wrap=True, overflow="ellipsis")
    table.add_column("phase", no_wrap=True, overflow="ellipsis")
    table.add_column("elapsed", justify="right")
    table.add_column("cost", justify="right")
    return table


def _finished_text(event: TrialEvent) -> Text:
    """The plain line of a finished trial, with its status in colour."""
    fields = [Text(field) for field in _trial_fields(event)]
    fields[2].stylize(_STATUS_STYLES.get(event.status or "", "red"))
    return Text("  ").join(fields)


def make_display(stream: TextIO | None = None) -> Display:
    """The live table on a terminal that can draw it, plain lines anywhere else (pipes, CI)."""
    target = sys.stderr if stream is None else stream
    if target.isatty() and os.environ.get("TERM") != "dumb":
        return LiveDisplay(target)
    return PlainDisplay(target)
