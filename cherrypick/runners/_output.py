"""How the runners handle a command's output: stream each line to the log, keep the tails.

Both runners receive output as byte chunks (from a pipe or an SSH channel) that may split lines
and multi-byte characters, so one piece of code turns chunks into whole lines for the log.
"""

from __future__ import annotations

import codecs
import threading
from typing import TextIO

from cherrypick.runners.base import TAIL_CHARS

#: What a stderr line starts with in a run's log (stdout lines have no prefix).
STDERR_PREFIX = "[stderr] "


class StreamCapture:
    """One output stream of one command: its line-buffered log writer and its tail.

    The two streams of a command share ``lock`` so their lines never interleave mid-line in
    the log, whichever thread writes them.
    """

    def __init__(self, log: TextIO | None, prefix: str, lock: threading.Lock) -> None:
        self._log = log
        self._prefix = prefix
        self._lock = lock
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""
        self._tail = ""

    def feed(self, chunk: bytes) -> None:
        """Take the next bytes of the stream; log every line they complete."""
        self._add(self._decoder.decode(chunk))

    def finish(self) -> None:
        """The stream ended: log its last line even without a newline."""
        self._add(self._decoder.decode(b"", final=True))
        if self._partial:
            self._write(self._partial + "\n")
            self._partial = ""

    @property
    def tail(self) -> str:
        """The last ``TAIL_CHARS`` characters seen so far."""
        return self._tail

    def _add(self, text: str) -> None:
        if not text:
            return
        self._tail = (self._tail + text)[-TAIL_CHARS:]
        head, newline, self._partial = (self._partial + text).rpartition("\n")
        if newline:
            self._write(head + newline)

    def _write(self, lines: str) -> None:
        if self._log is None:
            return
        if self._prefix:
            lines = "".join(self._prefix + line for line in lines.splitlines(keepends=True))
        with self._lock:
            self._log.write(lines)
            self._log.flush()


def capture_pair(log: TextIO | None) -> tuple[StreamCapture, StreamCapture]:
    """The stdout and stderr captures of one command, sharing one log lock."""
    lock = threading.Lock()
    return StreamCapture(log, "", lock), StreamCapture(log, STDERR_PREFIX, lock)
