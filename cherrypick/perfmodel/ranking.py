"""``python -m cherrypick.perfmodel``: the model's predictions for one CNN job on every GPU.

For each GPU the cheapest offering with the fewest GPUs of that kind is simulated on one node;
the table is sorted by predicted throughput per GPU, fastest first.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from cherrypick.errors import CherrypickError
from cherrypick.providers.base import Candidate, Offering

__all__ = ["main", "smallest_offerings"]


def smallest_offerings(offerings: Sequence[Offering]) -> dict[str, Offering]:
    """Per GPU, the offering with the fewest GPUs, the cheapest among those."""
    chosen: dict[str, Offering] = {}
    for o in offerings:
        best = chosen.get(o.gpu)
        if best is None or (o.gpus_per_node, o.price_per_hour) < (
            best.gpus_per_node,
            best.price_per_hour,
        ):
            chosen[o.gpu] = o
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cherrypick.perfmodel", description=__doc__)
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--batch-size", type=int, default=128, help="per GPU")
    parser.add_argument("--precision", default="fp16", choices=("fp32", "fp16", "bf16"))
    parser.add_argument("--data", default="synthetic", help="synthetic or jpeg")
    parser.add_argument("--dataset-size", type=int, default=None)
    parser.add_argument("--calibrate", metavar="RESULT_JSON", help="a measured profile to scale")
    args = parser.parse_args(argv)
    try:
        print("\n".join(_table(args)))
    except CherrypickError as exc:
        print(f"error: {exc}")
        return exc.exit_code
    return 0


def _table(args: argparse.Namespace) -> list[str]:
    from cherrypick.catalog import load_catalog
    from cherrypick.perfmodel.model import PerformanceModel
    from cherrypick.workloads.cnn.workload import CNNWorkload

    params = {"model": args.model, "batch_size": args.batch_size, "precision": args.precision}
    params["data"] = args.data
    if args.dataset_size is not None:
        params["dataset_size"] = args.dataset_size
    if args.calibrate:
        params["calibration"] = args.calibrate
    profile = CNNWorkload(params).simulation_profile()
    model = PerformanceModel()
    rows = []
    for gpu, offering in smallest_offerings(load_catalog()).items():
        p = model.predict(Candidate(offering), profile)
        per_1000 = offering.price_per_hour / 3600 * 1000 / p.throughput_images_s
        per_gpu = p.throughput_images_s / offering.gpus_per_node
        rows.append((per_gpu, gpu, offering, p, per_1000))
    rows.sort(key=lambda row: -row[0])
    lines = [
        f"{'gpu':<10} {'offering':<40} {'iter ms':>8} {'images/s':>9} {'$/1000 img':>10}  note"
    ]
    for _, gpu, offering, p, per_1000 in rows:
        where = f"{offering.provider} {offering.instance_type} ({offering.gpus_per_node} GPU)"
        note = "out of memory" if p.oom else ""
        lines.append(
            f"{gpu:<10} {where:<40} {p.iteration_s * 1000:8.1f} {p.throughput_images_s:9.0f}"
            f" {per_1000:10.5f}  {note}"
        )
    return lines
