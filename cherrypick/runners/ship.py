"""Ship the controller's own code to a machine, so every node runs the version the controller runs.

:meth:`Package.of_controller` builds a wheel from the modules this process imports (the installed
package, or the working tree of an editable install), named by a digest of their content, and
caches it. :meth:`Package.install` puts it in a virtual environment on the machine, created with
``--system-site-packages`` so the image's PyTorch (and numpy, ...) is used when there is one; the
environment is keyed by the digest, so a machine that has this version already costs one command.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import importlib.util
import shlex
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from cherrypick.errors import WorkloadError
from cherrypick.runners.base import Runner

__all__ = ["Package"]

#: The packages the wheel holds, by import name (the dev tree maps some from other folders).
_PACKAGES = ("cherrypick", "cherrypick.providers", "cherrypick.workloads", "cherrypick.configs")
#: Folders never shipped: bytecode, and the catalog's offline sources (not part of the package).
_SKIPPED = frozenset({"__pycache__", "catalog-facts"})
#: How long installing the package (and its dependencies, on a bare machine) may take.
INSTALL_LIMIT_S = 1800.0
_REMOTE_ROOT = '"$HOME"/.cache/cherrypick'


@dataclass(frozen=True)
class Package:
    """A wheel of the controller's code: ``path`` on this machine, ``digest`` of its content."""

    path: Path
    digest: str

    @classmethod
    def of_controller(cls, cache: Path) -> Package:
        """The wheel of the code this process runs, built into ``cache`` unless already there."""
        files = _package_files()
        digest = _digest(files)
        version = f"{importlib.metadata.version('cherrypick')}+{digest}"
        path = cache / f"cherrypick-{version}-py3-none-any.whl"
        if not path.is_file():
            cache.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".partial")
            _write_wheel(partial, version, files)
            partial.replace(path)
        return cls(path, digest)

    def install(self, runner: Runner, python: str, log: TextIO) -> str:
        """Make sure the machine has this version in its environment; return the ``PATH``
        (a shell expression) that puts the environment's ``python`` first."""
        env = f"{_REMOTE_ROOT}/env-{self.digest}"
        marker = f"{env}/.cherrypick-installed"
        path = f"{env}/bin:$PATH"
        present = runner.run(f"test -f {marker}", timeout_s=60.0, log=log)
        if present.ok:
            return path
        remote_wheel = f"/tmp/{self.path.name}"
        runner.put(self.path, remote_wheel)
        wheel = shlex.quote(remote_wheel)
        script = (
            f"mkdir -p {_REMOTE_ROOT} && exec 9>{env}.lock && flock 9 &&"
            f" if ! test -f {marker}; then rm -rf {env} &&"
            f" {shlex.quote(python)} -m venv --system-site-packages {env} &&"
            f" {env}/bin/python -m pip install --quiet --disable-pip-version-check {wheel} &&"
            f" touch {marker}; fi; rc=$?; rm -f {wheel}; exit $rc"
        )
        done = runner.run(script, timeout_s=INSTALL_LIMIT_S, log=log)
        if not done.ok:
            tail = (done.stderr or done.stdout)[-600:].strip()
            raise WorkloadError(f"{runner.where}: cannot install cherrypick: {tail}")
        return path


def _package_files() -> dict[str, bytes]:
    """Every file of the shipped packages by its path in the wheel."""
    files: dict[str, bytes] = {}
    for name in _PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            continue
        prefix = name.replace(".", "/")
        for folder in spec.submodule_search_locations:
            root = Path(folder)
            for file in sorted(root.rglob("*")):
                relative = file.relative_to(root)
                if file.is_file() and not _SKIPPED & set(relative.parts) and file.suffix != ".pyc":
                    files.setdefault(f"{prefix}/{relative.as_posix()}", file.read_bytes())
    if "cherrypick/__init__.py" not in files:
        raise WorkloadError("cannot find cherrypick's own files to ship to the machines")
    return files


def _digest(files: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return h.hexdigest()[:16]


def _write_wheel(path: Path, version: str, files: dict[str, bytes]) -> None:
    info = f"cherrypick-{version}.dist-info"
    requires = [r for r in importlib.metadata.requires("cherrypick") or [] if "extra ==" not in r]
    meta = {
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: cherrypick\n"
        f"Version: {version}\n" + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: cherrypick\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    contents = {**files, **{k: v.encode() for k, v in meta.items()}}
    record = "".join(f"{name},{_hash(data)},{len(data)}\n" for name, data in contents.items())
    record += f"{info}/RECORD,,\n"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in sorted(contents.items()):
            wheel.writestr(name, data)
        wheel.writestr(f"{info}/RECORD", record)


def _hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"
