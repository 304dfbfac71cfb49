"""``cherrypick catalog list|refresh``: show the catalog's offerings, or rebuild the catalog files
from the providers' APIs (``--provider``) or from the catalog facts (``--from``)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cherrypick.errors import InputError

if TYPE_CHECKING:
    from cherrypick.catalog.refresh import Refreshed
    from cherrypick.providers.base import Offering

_PROVIDERS = ("aws", "azure", "gcp")
_HEADERS = (
    "provider",
    "region",
    "instance type",
    "GPUs",
    "GPU mem",
    "vCPUs",
    "$/h",
    "spot $/h",
    "zones",
)
_RIGHT = {"GPU mem", "vCPUs", "$/h", "spot $/h", "zones"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    shown = "show offerings, cheapest first"
    _list_arguments(actions.add_parser("list", help=shown, description=shown))
    rebuilt = "rebuild configs/catalogs/*.csv from the providers' APIs or the catalog facts"
    _refresh_arguments(actions.add_parser("refresh", help=rebuilt, description=rebuilt))


def _list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--provider", action="append", help="only this provider (repeatable)")
    parser.add_argument(
        "--gpu", action="append", help="only this GPU model, e.g. A100 (repeatable)"
    )
    parser.add_argument("--region", action="append", help="only this region (repeatable)")
    parser.add_argument("--max-price", help="at most this many USD per hour for one VM")
    parser.add_argument("--min-gpus", help="at least this many GPUs per VM")
    parser.add_argument(
        "--catalog",
        type=Path,
        action="append",
        help="a catalog file (repeatable; default: bundled)",
    )


def _refresh_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--provider",
        action="append",
        choices=_PROVIDERS,
        help="refresh this provider from its APIs (repeatable); with --from, only its facts",
    )
    parser.add_argument("--from", dest="facts", type=Path, help="rebuild from this facts folder")
    parser.add_argument(
        "--out", type=Path, help="folder of the catalogs (default: the bundled one)"
    )
    parser.add_argument("--region", action="append", help="API regions (default: those in --out)")
    parser.add_argument("--retrieved", help="the date to record (default: today; facts: theirs)")
    parser.add_argument("--gpus", type=Path, help="GPU file (default: bundled configs/gpus.yaml)")
    parser.add_argument("--keep-flagged", action="store_true", help="keep low flagged prices too")
    parser.add_argument("--diff", action="store_true", help="print every row added or changed")
    parser.add_argument("--dry-run", action="store_true", help="print what would change only")
    parser.add_argument("--profile", help="AWS profile (default: boto3's)")
    parser.add_argument("--project", help="GCP project (default: gcloud's)")
    parser.add_argument("--subscription", help="Azure subscription id (AZURE_SUBSCRIPTION_ID)")


def run(args: argparse.Namespace) -> int:
    return _list(args) if args.action == "list" else _refresh(args)


# -- list ---------------------------------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    from cherrypick.catalog import CatalogFilter, load_catalog

    max_price = _positive("--max-price", args.max_price)
    min_gpus = _whole("--min-gpus", args.min_gpus)
    offerings = load_catalog(paths=args.catalog)
    chosen = CatalogFilter(
        providers=args.provider, regions=args.region, gpus=args.gpu, max_price_per_hour=max_price
    ).apply(offerings)
    kept = sorted(
        (o for o in chosen if o.gpus_per_node >= min_gpus), key=lambda o: (o.price_per_hour, o.key)
    )
    if not kept:
        print("no offering matches")
        return 0
    print(_table([_cells(o) for o in kept]))
    print(f"{len(kept)} offering{'s' if len(kept) > 1 else ''}")
    return 0


def _positive(flag: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise InputError(f"{flag}: expected a positive number of USD per hour, got '{text}'")
    return value


def _whole(flag: str, text: str | None) -> int:
    if text is None:
        return 1
    if not text.strip().isdigit() or int(text) < 1:
        raise InputError(f"{flag}: expected a whole number >= 1, got '{text}'")
    return int(text)


def _cells(o: Offering) -> list[str]:
    spot = "-" if o.spot_price_per_hour is None else f"{o.spot_price_per_hour:.4f}"
    return [
        o.provider,
        o.region,
        o.instance_type,
        f"{o.gpus_per_node}x {o.gpu}",
        f"{o.gpu_memory_gib:g} GiB",
        str(o.vcpus),
        f"{o.price_per_hour:.4f}",
        spot,
        str(len(o.extra.get("zones") or ())),
    ]


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(_HEADERS)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            c.rjust(w) if h in _RIGHT else c.ljust(w)
            for c, w, h in zip(cells, widths, _HEADERS, strict=True)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(_HEADERS), *(line(r) for r in rows)])


# -- refresh ------------------------------------------------------------------------------------


def _refresh(args: argparse.Namespace) -> int:
    from cherrypick.commands._paths import check_output

    out = args.out if args.out is not None else _bundled()
    check_output(out, "--out", folder=True)
    results = _from_facts(args, out) if args.facts is not None else _from_apis(args, out)
    for result in results if not args.dry_run else ():
        result.write()  # every provider's file is built (and checked) before any is written
    for result in results:
        _show(result, args.diff or args.dry_run, args.dry_run)
    return 0


def _from_facts(args: argparse.Namespace, out: Path) -> list[Refreshed]:
    from cherrypick.catalog.refresh import build_catalogs
    from cherrypick.catalog.refresh.build import DEFAULT_RETRIEVED

    if args.region:
        raise InputError("--region: only for a refresh from the APIs (--provider without --from)")
    providers = _unique(args.provider) or _PROVIDERS
    retrieved = args.retrieved or DEFAULT_RETRIEVED
    built = build_catalogs(
        args.facts, out, retrieved, args.gpus, providers=providers, keep_flagged=args.keep_flagged
    )
    return list(built.values())


def _from_apis(args: argparse.Namespace, out: Path) -> list[Refreshed]:
    from cherrypick.catalog.refresh import refresh_from_api
    from cherrypick.catalog.refresh.build import parse_date

    if not args.provider:
        raise InputError("give --provider aws|gcp|azure (its APIs) or --from FOLDER (the facts)")
    retrieved = parse_date(args.retrieved) if args.retrieved else None
    accounts = {"aws": args.profile, "gcp": args.project, "azure": args.subscription}
    return [
        refresh_from_api(
            provider,
            out,
            account=accounts[provider],
            regions=args.region,
            retrieved=retrieved,
            gpus=args.gpus,
            keep_flagged=args.keep_flagged,
        )
        for provider in _unique(args.provider)
    ]


def _show(result: Refreshed, details: bool, dry_run: bool) -> None:
    kinds = [line.split(":", 1)[0] for line in result.changes]
    counts = ", ".join(f"{kinds.count(k)} {k}" for k in ("added", "removed", "changed"))
    verb = "would write" if dry_run else "wrote"
    print(f"{result.target}: {verb} {result.offerings} offerings ({counts})")
    for line in (*result.flags, *(result.changes if details else ())):
        print(f"  {line}")


def _unique(names: Sequence[str] | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names or ()))


def _bundled() -> Path:
    from importlib.resources import files

    return Path(str(files("cherrypick.configs") / "catalogs"))
