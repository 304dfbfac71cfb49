"""Train a CNN with per-layer profiling and write the result JSON: the job run on every VM.

Usage::

    python -m cherrypick.workloads.cnn.train --config run.yaml --output result.json [--model ...]
    torchrun --nproc-per-node G --nnodes N ... -m cherrypick.workloads.cnn.train --config ...

Flags override the YAML file's settings (keys as ``TrainConfig``'s fields). Under ``torchrun`` every
process trains with DistributedDataParallel and rank 0 writes the result merged over all ranks.

Exit codes (a result file is written in every case but a kill from outside):

====  =======================================================================
0     ok: the result has ``status: ok``
2     the configuration is wrong (``status: error``, the message says what)
3     out of memory, CUDA or host (``status: oom``)
4     any other failure (``status: error``, with the exception's message)
====  =======================================================================
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from cherrypick.workloads.cnn.config import add_config_arguments, config_from_args
from cherrypick.workloads.cnn.result import failure, write_result

from cherrypick.errors import InputError

__all__ = ["EXIT_CODES", "main"]

EXIT_CODES = {"ok": 0, "config": 2, "oom": 3, "error": 4}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cherrypick.workloads.cnn.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arguments(parser)
    parser.add_argument("--output", default="result.json", help="where to write the result JSON")
    args = parser.parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    signal.signal(signal.SIGTERM, _terminated)  # torchrun stops the others when one rank fails
    try:
        from cherrypick.workloads.cnn.runner import profile_run

        config = config_from_args(args)
        result = profile_run(config)
    except InputError as exc:
        result = _failure("error", str(exc), vars(args))
        code = EXIT_CODES["config"]
    else:
        code = EXIT_CODES[result["status"]]
    if rank == 0:
        write_result(result, Path(args.output))
    if code:
        print(f"{parser.prog}: {result['status']}: {result['message']}", file=sys.stderr)
    return code


def _failure(status: str, message: str, settings: dict[str, Any]) -> dict[str, Any]:
    return failure(status, message, settings, {"host": os.uname().nodename})


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise RuntimeError("terminated by SIGTERM (another rank may have failed)")


if __name__ == "__main__":
    raise SystemExit(main())
