"""Arguments for tiny training runs (narrow models on small images) that keep the tests fast."""

from __future__ import annotations


def tiny_train_args(
    image_size: int = 32, iterations: int = 8, sample_every: int = 2, threads: int | None = 1
) -> list[str]:
    args = {
        "--image-size": image_size,
        "--width": 0.125,
        "--classes": 10,
        "--batch-size": 4,
        "--workers": 0,
        "--dataset-size": 64,
        "--warmup": 2,
        "--iterations": iterations,
        "--sample-every": sample_every,
    }
    if threads is not None:
        args["--threads"] = threads
    return [str(part) for flag, value in args.items() for part in (flag, value)]
