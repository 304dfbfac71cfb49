"""``cherrypick doctor [FILE.yaml] [--provider P]``: check, before a search spends anything, that
each cloud's SDK is installed, its credentials are accepted, and its GPU quotas can hold the
catalog's offerings; print what is missing and how to fix it."""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Sequence

from cherrypick.errors import CherrypickError
from cherrypick.providers.base import DoctorCheck, Offering

#: The clouds doctor knows, with the module each one's SDK installs and the extra that installs it.
SDKS = {"aws": "boto3", "gcp": "googleapiclient", "azure": "azure.mgmt.compute"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", nargs="?", help="a search file: check its clouds, filters and settings"
    )
    parser.add_argument(
        "--provider",
        action="append",
        choices=sorted(SDKS),
        help="check only this cloud (repeatable; default: the file's clouds, else all three)",
    )


def run(args: argparse.Namespace) -> int:
    checks: list[DoctorCheck] = []
    for name, offerings, provider_args in _clouds(args):
        checks += _check_cloud(name, offerings, provider_args)
    for check in checks:
        print(_line(check))
    missing = [c for c in checks if not c.ok]
    print(f"{len(checks) - len(missing)} of {len(checks)} checks passed")
    return 1 if missing else 0


def _clouds(args: argparse.Namespace) -> list[tuple[str, list[Offering], tuple[object, ...]]]:
    """Each cloud to check, the catalog offerings behind it, and its provider's arguments."""
    from cherrypick.catalog import CatalogFilter, load_catalog, load_gpus
    from cherrypick.providers.base import CloudOptions

    spec = None
    if args.file is not None:
        from cherrypick.searching.setup import cloud_options
        from cherrypick.spec import load_spec

        spec = load_spec(args.file)
    names = args.provider or _clouds_of(spec)
    gpus = load_gpus()
    found: list[tuple[str, list[Offering], tuple[object, ...]]] = []
    for name in names:
        offerings = load_catalog([name], gpus=gpus)
        options = CloudOptions() if spec is None else cloud_options(spec, name)
        if spec is not None:
            f = spec.filters
            keep = CatalogFilter([name], f.regions, f.gpus, f.min_gpu_memory_gib)
            offerings = keep.apply(offerings, gpus)
        found.append((name, offerings, (options,)))
    return found


def _clouds_of(spec: object) -> list[str]:
    providers = getattr(getattr(spec, "filters", None), "providers", None)
    if not providers:
        return sorted(SDKS)
    return [p for p in providers if p in SDKS]


def _check_cloud(
    name: str, offerings: Sequence[Offering], provider_args: tuple[object, ...]
) -> list[DoctorCheck]:
    if not _importable(name):
        fix = f"pip install 'cherrypick[{name}]'"
        return [DoctorCheck(name, "SDK", False, f"{SDKS[name]} is not installed", fix)]
    from cherrypick.providers.base import provider_registry

    try:
        provider = provider_registry.create(name, *provider_args)
        return list(provider.doctor(offerings))
    except CherrypickError as exc:
        return [DoctorCheck(name, "credentials", False, str(exc), _advice(name))]


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(SDKS[name]) is not None
    except ModuleNotFoundError:
        return False


def _advice(name: str) -> str:
    return {
        "aws": "configure credentials: aws configure (or AWS_PROFILE / AWS_ACCESS_KEY_ID)",
        "gcp": "gcloud auth application-default login; gcloud config set project PROJECT",
        "azure": "az login; set AZURE_SUBSCRIPTION_ID or clouds.azure.subscription_id",
    }[name]


def _line(check: DoctorCheck) -> str:
    mark = "ok     " if check.ok else "MISSING"
    line = f"{mark} {check.provider:<6} {check.name}: {check.detail}"
    return line if check.ok or not check.fix else f"{line}\n        fix: {check.fix}"
