"""Shell snippets sent to a machine to look after process groups: plain bash, nothing installed.

A command's process group outlives the connection that started it, so killing "the command"
always means killing its group, and "is it running" always means "has its group a live member".
"""

from __future__ import annotations

import math

#: Defines ``cp_alive PGID``: true while the group has a member that is not a zombie. ``kill -0``
#: alone is not enough: an orphan stays a zombie member until its new parent reaps it, and some
#: inits (in containers) never do. Where ``ps`` is missing, ``kill -0`` is the best answer.
ALIVE_FUNCTION = (
    "cp_alive() { if command -v ps >/dev/null 2>&1; then"
    " ps -e -o pgid= -o stat= | awk -v g=\"$1\" '$1 == g && $2 !~ /^Z/ {f = 1} END {exit !f}';"
    ' else kill -0 -- "-$1" 2>/dev/null; fi; }'
)

#: How often the kill script looks whether the group is gone.
_STEP_S = 0.1


def kill_group(pgid: str, grace_s: float) -> str:
    """A script that sends TERM to group ``pgid``, then KILL after ``grace_s``.

    ``pgid`` is digits or a shell variable holding them (``$pgid``), never quoted text.

    It exits 0 whether or not the group existed, so killing twice is harmless.
    """
    steps = max(1, math.ceil(grace_s / _STEP_S))
    return "; ".join(
        [
            ALIVE_FUNCTION,
            f'kill -TERM -- "-{pgid}" 2>/dev/null',
            f'i=0; while [ "$i" -lt {steps} ] && cp_alive {pgid}; do sleep {_STEP_S}; i=$((i + 1));'
            " done",
            f'if cp_alive {pgid}; then kill -KILL -- "-{pgid}" 2>/dev/null; fi',
            "true",
        ]
    )
