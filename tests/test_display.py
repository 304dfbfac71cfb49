"""The search display: plain lines for logs, a live table for terminals, and the choice between."""

from __future__ import annotations

import io
import re
import threading
import time
from collections.abc import Iterator

import pytest
from rich.console import Console

from cherrypick.searching.display import (
    LiveDisplay,
    NullDisplay,
    Phase,
    PlainDisplay,
    SearchStatus,
    TrialEvent,
    make_display,
)

CANDIDATE = "aws g5.xlarge x2 (2 A10G) us-east-1"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
#: rich erases each line of the live table before redrawing it; the last frame follows the last.
ERASE_LINE = "\x1b[2K"


def event(
    trial_id: int, phase: Phase, elapsed_s: float = 42.0, cost_usd: float = 0.12, **extra: str
) -> TrialEvent:
    return TrialEvent(trial_id, CANDIDATE, phase, elapsed_s, cost_usd, **extra)


def status(spent: float = 12.3, done: int = 3) -> SearchStatus:
    return SearchStatus("$3.40 1h12m aws g5.xlarge x2", spent, 100.0, done, 10 - done)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CharByCharStream(io.StringIO):
    """Writes one character at a time, yielding between them, so unlocked writers interleave."""

    def write(self, text: str) -> int:
        for char in text:
            super().write(char)
            time.sleep(0)
        return len(text)


class TtyStream(io.StringIO):
    def isatty(self) -> bool:
        return True


def plain_lines(display_events: list[TrialEvent]) -> list[str]:
    stream = io.StringIO()
    display = PlainDisplay(stream)
    for each in display_events:
        display.trial(each)
    display.close()
    return stream.getvalue().splitlines()


def test_plain_prints_one_line_per_event_with_phase_time_and_money() -> None:
    lines = plain_lines(
        [
            event(3, Phase.LAUNCHING, 1.0, 0.0, detail="us-east-1a"),
            event(3, Phase.SETTING_UP),
            event(3, Phase.RUNNING, 4000.0, 1234.5, detail="iteration 12 of 50"),
        ]
    )
    assert lines == [
        f"trial   3  {CANDIDATE}  launching  1s  $0.00  us-east-1a",
        f"trial   3  {CANDIDATE}  setting up  42s  $0.12",
        f"trial   3  {CANDIDATE}  running  1h06m  $1,234.50  iteration 12 of 50",
    ]


def test_plain_done_lines_say_late_apart_from_ok() -> None:
    ok, late, error = plain_lines(
        [
            event(1, Phase.DONE, 4320.0, 3.4, status="ok", measured="1h12m $3.40"),
            event(2, Phase.DONE, 4320.0, 3.4, status="late", measured="1h12m $3.40"),
            event(4, Phase.DONE, 190.0, 0.2, status="error", measured="CUDA error [device 0]"),
        ]
    )
    assert ok == f"trial   1  {CANDIDATE}  done ok  1h12m  $3.40  1h12m $3.40"
    assert late == f"trial   2  {CANDIDATE}  done late  1h12m  $3.40  1h12m $3.40"
    assert error == f"trial   4  {CANDIDATE}  done error  3m10s  $0.20  CUDA error [device 0]"


def test_plain_prints_the_search_line_only_when_it_changes() -> None:
    stream = io.StringIO()
    display = PlainDisplay(stream)
    display.search(status())
    display.search(status())
    display.message("resumed: 3 trials from the store")
    display.search(status(spent=12.301))  # the same to the cent: nothing new to say
    display.search(status(spent=15.0, done=4))
    display.search(SearchStatus("none yet", 0.0, None, 0, 10))
    assert stream.getvalue().splitlines() == [
        "search  best $3.40 1h12m aws g5.xlarge x2  spent $12.30 of $100.00  trials 3 done, 7 left",
        "resumed: 3 trials from the store",
        "search  best $3.40 1h12m aws g5.xlarge x2  spent $15.00 of $100.00  trials 4 done, 6 left",
        "search  best none yet  spent $0.00  trials 0 done, 10 left",
    ]


def test_plain_lines_from_many_threads_stay_whole() -> None:
    stream = CharByCharStream()
    display = PlainDisplay(stream)
    threads, phases = 16, [Phase.LAUNCHING, Phase.BOOTING, Phase.RUNNING, Phase.COLLECTING]

    def run_trial(trial_id: int) -> None:
        for phase in phases:
            display.trial(event(trial_id, phase))
            display.search(status(spent=float(trial_id)))
        display.trial(event(trial_id, Phase.DONE, status="ok", measured="1m00s $0.12"))

    workers = [threading.Thread(target=run_trial, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    lines = stream.getvalue().splitlines()
    progress = [f"{phase}  42s  $0.12" for phase in phases]
    done = "done ok  42s  $0.12  1m00s $0.12"
    expected = [
        f"trial {n:>3}  {CANDIDATE}  {end}" for n in range(threads) for end in [*progress, done]
    ]
    search_line = re.compile(r"^search  best \$3\.40 1h12m aws g5\.xlarge x2  spent \$\d+\.00 of ")
    assert sorted(line for line in lines if not search_line.match(line)) == sorted(expected)


@pytest.fixture
def live() -> Iterator[tuple[LiveDisplay, io.StringIO, FakeClock]]:
    buffer, clock = io.StringIO(), FakeClock()
    console = Console(file=buffer, force_terminal=True, width=120)
    display = LiveDisplay(buffer, console=console, clock=clock)
    try:
        yield display, buffer, clock
    finally:
        display.close()


def final_frame(buffer: io.StringIO) -> str:
    return ANSI.sub("", buffer.getvalue().rsplit(ERASE_LINE, 1)[-1])


def test_live_shows_trials_in_flight_with_ticking_time_and_the_footer(
    live: tuple[LiveDisplay, io.StringIO, FakeClock],
) -> None:
    display, buffer, clock = live
    display.trial(event(7, Phase.RUNNING, 10.0, 0.5, detail="iteration 12 of 50"))
    display.search(status())
    clock.now += 90.0
    display.close()
    frame = final_frame(buffer)
    row = next(line for line in frame.splitlines() if CANDIDATE in line)
    assert "7" in row and "running  iteration 12 of 50" in row and "$0.50" in row
    assert "1m40s" in row  # ten seconds at the event, ninety since by the clock
    assert "best $3.40 1h12m aws g5.xlarge x2" in frame
    assert "spent $12.30 of $100.00" in frame
    assert "trials 3 done, 7 left" in frame


def test_live_prints_finished_trials_above_the_table_and_drops_their_rows(
    live: tuple[LiveDisplay, io.StringIO, FakeClock],
) -> None:
    display, buffer, _ = live
    display.trial(event(1, Phase.RUNNING))
    display.trial(TrialEvent(2, "gcp a2-highgpu-1g", Phase.BOOTING, 5.0, 0.01))
    display.trial(event(1, Phase.DONE, status="late", measured="1h12m $3.40 [deadline 1h]"))
    display.message("no capacity, trying eu-west-1")
    display.close()
    text = ANSI.sub("", buffer.getvalue())
    finished = f"trial   1  {CANDIDATE}  done late  42s  $0.12  1h12m $3.40 [deadline 1h]"
    assert text.count(finished) == 1
    assert "no capacity, trying eu-west-1" in text
    frame = final_frame(buffer)
    assert "gcp a2-highgpu-1g" in frame
    assert CANDIDATE not in frame


def test_live_prints_each_finished_trial_once_from_many_threads(
    live: tuple[LiveDisplay, io.StringIO, FakeClock],
) -> None:
    display, buffer, _ = live
    threads = 16

    def run_trial(trial_id: int) -> None:
        for phase in [Phase.LAUNCHING, Phase.RUNNING, Phase.TERMINATING]:
            display.trial(event(trial_id, phase))
            display.search(status(spent=float(trial_id)))
        display.trial(event(trial_id, Phase.DONE, status="ok", measured="1m00s $0.12"))

    workers = [threading.Thread(target=run_trial, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    display.close()
    lines = ANSI.sub("", buffer.getvalue()).splitlines()
    for trial_id in range(threads):
        done = f"trial {trial_id:>3}  {CANDIDATE}  done ok  42s  $0.12  1m00s $0.12"
        assert lines.count(done) == 1
    assert CANDIDATE not in final_frame(buffer)


def test_live_close_is_idempotent(live: tuple[LiveDisplay, io.StringIO, FakeClock]) -> None:
    display, buffer, _ = live
    display.close()
    written = buffer.getvalue()
    display.close()
    assert buffer.getvalue() == written


def test_null_display_accepts_everything() -> None:
    display = NullDisplay()
    display.trial(event(1, Phase.DONE, status="ok"))
    display.search(status())
    display.message("nothing")
    display.close()


def test_make_display_is_plain_off_a_terminal() -> None:
    assert isinstance(make_display(io.StringIO()), PlainDisplay)


def test_make_display_is_live_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    display = make_display(TtyStream())
    try:
        assert isinstance(display, LiveDisplay)
    finally:
        display.close()


def test_make_display_is_plain_on_a_dumb_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "dumb")
    assert isinstance(make_display(TtyStream()), PlainDisplay)
