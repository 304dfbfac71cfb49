"""Every example in README.md and docs/*.md works from a clone.

- ```python blocks run as written;
- ```yaml search files validate;
- every command of a ```bash or ```console block runs, as written or as a fast variant of itself
  (fewer seeds, trials, iterations; tiny models), in a fresh working directory where ``configs/``
  is the repository's, and its output is checked for what the docs say it prints; or it is in
  ``ALLOWED`` below, with the reason it does not run here;
- no command refers to ``../shared`` (a clone does not have it), and the README stays short.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from _tiny import tiny_train_args

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
TEXTS = {path.relative_to(ROOT).as_posix(): path.read_text(encoding="utf-8") for path in DOCS}
MAX_README_LINES = 210

TORCHRUN = (
    "torchrun --nproc-per-node 8 --nnodes 2 --node-rank 0 --master-addr 10.0.0.1"
    " --master-port 29500 -m cherrypick.workloads.cnn.train --config run.yaml --output result.json"
)

#: Commands that do not run here, each with the reason and, where there is one, the test that
#: covers what it does. Keep this list small: a command not in it must run.
ALLOWED = {
    "python -m pip install .": "CI installs the package itself (.ci/run); a test must not"
    " reinstall the environment it runs in",
    "python -m pip install -e .[test]": "what .ci/run does before it runs the tests",
    "python -m pytest -n 2 -q": "the whole test suite, this file included: what CI runs",
    "cherrypick bench loopback --trials 5": "a minute and a half of real training over SSH;"
    " covered by tests/test_bench_loopback.py (the overhead part, through the same command) and"
    " tests/test_ssh_search.py (the same 4-trial search)",
    "python -m pip install .[aws]": "installs the package, as the first command does; .ci/run"
    " installs every cloud's SDK with .[test]",
    "cherrypick doctor configs/examples/first-cloud-search.yaml": "needs an AWS account; covered"
    " by tests/test_doctor_cli.py (the same command over moto: credentials, quotas, fixes)",
    "cherrypick search configs/examples/first-cloud-search.yaml": "launches real AWS machines;"
    " covered by tests/test_cloud_search.py (a search through each cloud's faithful fake, whose"
    " machines are a loopback sshd that trains)",
    TORCHRUN: "needs two machines with 8 GPUs each; covered by tests/test_cnn_ddp.py::"
    "test_two_ranks_train_with_gloo_and_rank0_merges, which runs the same module under"
    " torch.distributed.run with two CPU processes",
}

# --------------------------------------------------------------------------- reading the docs


def _blocks(text: str, languages: str) -> list[str]:
    return re.findall(rf"```(?:{languages})\n(.*?)```", text, flags=re.S)


def _command_lines(block: str, console: bool) -> list[str]:
    """The commands of a block: ``$ `` prompts stripped (console: other lines are output),
    ``\\`` continuations joined, comment lines dropped."""
    commands: list[str] = []
    pending: str | None = None
    for raw in block.splitlines():
        line = raw.strip()
        if pending is not None:
            pending += " " + line
        elif console and line.startswith("$ "):
            pending = line[2:]
        elif not console and line and not line.startswith("#"):
            pending = line
        else:
            continue
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
        else:
            commands.append(pending)
            pending = None
    assert pending is None, f"a command ends in a continuation: {pending}"
    return commands


def _split(command: str) -> list[list[str]]:
    """One line into its commands (``a && b`` is two), each as argv, trailing comments dropped."""
    parts: list[list[str]] = [[]]
    for token in shlex.split(command, comments=True):
        if token == "&&":
            parts.append([])
        else:
            parts[-1].append(token)
    return [part for part in parts if part]


def _collect() -> dict[str, tuple[str, list[str]]]:
    """Every distinct command of the docs: its text -> (the first doc that has it, argv)."""
    found: dict[str, tuple[str, list[str]]] = {}
    for doc, text in TEXTS.items():
        for language in ("bash", "console"):
            for block in _blocks(text, language):
                for line in _command_lines(block, console=language == "console"):
                    for argv in _split(line):
                        found.setdefault(" ".join(argv), (doc, argv))
    return found


COMMANDS = _collect()


# --------------------------------------------------------------------------- fast variants


Stores = Callable[[str], Path]  # a store's file name -> a finished dry-run search of that name
Setup = Callable[[Path, Stores], None]  # prepares the working directory


@dataclass
class Case:
    """What to run for a documented command, and what its output must show."""

    argv: list[str]
    check: Callable[[subprocess.CompletedProcess[str], Path], None]
    setup: list[Setup] = field(default_factory=list)
    timeout: int = 180
    missing: str = ""  # why there is no fast variant: the test fails with this


def _no_check(done: subprocess.CompletedProcess[str], cwd: Path) -> None:
    raise AssertionError("unreachable")


def _set(argv: list[str], flag: str, value: str | None = None) -> list[str]:
    """argv with ``flag`` set to ``value`` (replaced where given, appended otherwise)."""
    out = list(argv)
    if flag in out:
        i = out.index(flag)
        if value is not None:
            out[i + 1] = value
        return out
    return [*out, flag] if value is None else [*out, flag, value]


def _drop(argv: list[str], flag: str) -> list[str]:
    i = argv.index(flag)
    return argv[:i] + argv[i + 2 :]


def _value(argv: list[str], flag: str, default: str | None = None) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else default


def _expect(*needles: str) -> Callable[[subprocess.CompletedProcess[str], Path], None]:
    def check(done: subprocess.CompletedProcess[str], cwd: Path) -> None:
        for needle in needles:
            assert needle in done.stdout, f"{needle!r} not in the output:\n{done.stdout[-3000:]}"

    return check


def _all(*checks: Callable[[subprocess.CompletedProcess[str], Path], None]) -> Callable[..., None]:
    def check(done: subprocess.CompletedProcess[str], cwd: Path) -> None:
        for one in checks:
            one(done, cwd)

    return check


def _copy_store(name: str) -> Setup:
    def setup(cwd: Path, stores: Stores) -> None:
        shutil.copy(stores(name), cwd / name)

    return setup


def _write(name: str, text: str) -> Setup:
    def setup(cwd: Path, stores: Stores) -> None:
        (cwd / name).write_text(text)

    return setup


def _search(argv: list[str]) -> Case:
    setup: list[Setup] = []
    resume = _value(argv, "--resume")
    if resume is not None:  # the store of an earlier search, as the docs' previous line made
        setup.append(_copy_store(resume))
        return Case(argv, _expect("recommended:", "trials:"), setup)

    def check(done: subprocess.CompletedProcess[str], cwd: Path) -> None:
        if "--json" in argv:
            result = json.loads(done.stdout)
            assert result["recommendation"]["provider"] in {"aws", "gcp", "azure", "ssh"}
            assert result["trials_used"] >= 1
            if "--exhaustive" in argv:
                assert {"optimum", "recommendation_true", "gap"} <= set(result)
        else:
            _expect("recommended:", "trials:", "runner-up:")(done, cwd)
            if "--exhaustive" in argv:
                _expect("true optimum:", "from the optimum")(done, cwd)
        spec = (ROOT / argv[2]).read_text()
        store = _value(argv, "--store") or re.search(r"^store: (\S+)", spec, re.M).group(1)
        assert (cwd / store).is_file(), f"no trial store {store} in the working directory"

    return Case(argv, check, setup)


def _cleanup(argv: list[str]) -> Case:
    """On a stopped search's store: nothing of it is left, and cleanup says so."""
    store = _value(argv, "--store")
    setup = [] if store is None else [_copy_store(store)]
    return Case(argv, _expect("nothing left running"), setup)


def _report(argv: list[str]) -> Case:
    store = argv[2]

    def check(done: subprocess.CompletedProcess[str], cwd: Path) -> None:
        _expect("recommendation:", "wrote ")(done, cwd)
        wrote = [
            cwd / line.removeprefix("wrote ")
            for line in done.stdout.splitlines()
            if line.startswith("wrote ")
        ]
        names = {path.name for path in wrote}
        assert all(path.is_file() and path.stat().st_size for path in wrote), wrote
        assert {"trials.csv", "convergence.png", "cost_runtime.png"} <= names, names
        assert ("report.html" in names) == ("--html" in argv), names

    return Case(argv, check, [_copy_store(store)])


def _image_folder(cwd: Path, stores: Stores) -> None:
    from PIL import Image

    folder = cwd / "images"
    for k, colour in enumerate(("red", "blue")):
        (folder / f"class{k}").mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (72, 72), colour).save(folder / f"class{k}" / f"{i}.jpg")


def _profile(argv: list[str]) -> Case:
    fast = [*argv, *tiny_train_args(image_size=64, iterations=4, sample_every=1)]
    data = _value(argv, "--data", "synthetic")
    setup: list[Setup] = []
    if data == "jpeg":
        fast = _set(fast, "--images-per-class", "2")
    elif data != "synthetic":  # a folder of class folders, e.g. ImageNet's: a tiny one instead
        fast = _set(fast, "--data", "images")
        fast = _drop(fast, "--dataset-size")  # the folder's image count
        setup.append(_image_folder)
    output = _value(argv, "--output", "result.json")

    def check(done: subprocess.CompletedProcess[str], cwd: Path) -> None:
        _expect("ms/iteration", "breakdown per iteration", f"wrote {output}")(done, cwd)
        result = json.loads((cwd / output).read_text())
        assert result["status"] == "ok" and result["config"]["model"] == _value(argv, "--model")
        assert result["profile"]["enabled"] == ("--no-profile" not in argv)
        if "--plot" in argv:
            assert (cwd / output).with_suffix(".png").stat().st_size > 0

    return Case(fast, check, setup)


def _train(argv: list[str]) -> Case:
    config = _value(argv, "--config")
    setup: list[Setup] = []
    if config is not None:  # the settings file the docs show, by its first-line name
        (yaml_text,) = [
            b for t in TEXTS.values() for b in _blocks(t, "yaml") if b.startswith(f"# {config}\n")
        ]
        setup.append(_write(config, yaml_text))
    output = _value(argv, "--output", "result.json")

    def check(done: subprocess.CompletedProcess[str], cwd: Path) -> None:
        result = json.loads((cwd / output).read_text())
        assert result["status"] == "ok", result["message"]
        assert result["iteration_ms"] > 0 and result["projected_job_seconds"] > 0
        if config is not None:
            model = re.search(r"^model: (\S+)", yaml_text, re.M).group(1)
            assert result["config"]["model"] == model

    return Case(
        [*argv, *tiny_train_args(image_size=64, iterations=4, sample_every=1)], check, setup
    )


def _cnn_bench(argv: list[str]) -> Case:
    """The three benchmarks share one fast run, ``all`` (torch's import is most of each run)."""
    fast = [*argv[:3], "all", *argv[4:]]
    for flag, value in (
        ("--iterations", "4"),
        ("--models", "resnet18"),
        ("--batches", "2"),
        ("--warmup", "1"),
    ):
        fast = _set(fast, flag, value)
    names = ("accounting", "overhead", "crosscheck")
    return Case(fast, _expect(*(f"== {name}" for name in names), "resnet18 batch 2 64px"))


def _bench(argv: list[str]) -> Case:
    name = argv[2]
    if name == "replay":
        fast = _set(_set(_set(argv, "--seeds", "1"), "--budget", "4"), "--jobs", "1")
        checks = [_expect(" ALL ", "cherrypick")]
        if "--stop-rule" in argv:
            checks.append(_expect("with the stop rule"))
        if "--json" in argv:
            out = _value(argv, "--json")
            checks.append(lambda done, cwd: json.loads((cwd / out).read_text()))
        return Case(fast, _all(*checks))
    if name == "stop-bound":
        fast = _set(_set(_set(argv, "--seeds", "1"), "--budget", "8"), "--jobs", "1")
        return Case(fast, _expect("kmeans", "terasort", "cherrypick"))
    if name == "dryrun":
        return Case(_set(_set(argv, "--seeds", "1"), "--jobs", "2"), _expect("pooled", "within 5%"))
    if name == "ask":
        fast = argv
        for flag, value in (("--candidates", "200"), ("--observations", "6"), ("--repeat", "2")):
            fast = _set(fast, flag, value)
        return Case(fast, _expect("ask(1) over 200 candidates"))
    raise AssertionError(f"no fast variant for cherrypick bench {name}")


def _ranking(done: subprocess.CompletedProcess[str], cwd: Path) -> None:
    gpus = [line.split()[0] for line in done.stdout.splitlines()[1:] if line.strip()]
    order = ["H100", "A100", "L40S", "V100", "A10", "A10G"]  # as docs/design.md says
    assert [g for g in gpus if g in order] == order, gpus
    last = [g for g in gpus if g in (*order, "L4", "T4")][-2:]
    assert sorted(last) == ["L4", "T4"], gpus  # "T4 ~ L4", the slowest of these


def _refresh(argv: list[str], command: str) -> Case:
    def check(done: subprocess.CompletedProcess[str], cwd: Path) -> None:
        for cloud in ("aws", "gcp", "azure"):
            built = (cwd / "built" / f"{cloud}.csv").read_text()
            assert f"{cloud}.csv: " in done.stdout and " offerings" in done.stdout
            assert f"# refresh: {command}\n" in built, "the catalogs name another refresh command"

    return Case(_set(argv, "--out", "built"), check)


def _catalog_list(argv: list[str]) -> Callable[[subprocess.CompletedProcess[str], Path], None]:
    """The offerings the filters ask for, cheapest first."""

    def check(done: subprocess.CompletedProcess[str], cwd: Path) -> None:
        lines = [line.split() for line in done.stdout.splitlines() if line.strip()]
        header, *rows, total = lines
        assert header[:3] == ["provider", "region", "instance"] and rows, done.stdout
        assert total == [str(len(rows)), "offerings"], total
        price = header.index("$/h")  # both two words a column: "GPU mem", "40 GiB"
        prices = [float(row[price]) for row in rows]
        assert prices == sorted(prices), prices
        gpu, most = _value(argv, "--gpu"), _value(argv, "--max-price")
        assert gpu is None or all(f"x {gpu}" in " ".join(row) for row in rows)
        assert most is None or max(prices) <= float(most)

    return check


def _case(argv: list[str]) -> Case:
    """The fast variant of a documented command; a new kind of command needs a rule here."""
    command = " ".join(argv)
    program, *rest = argv
    if program == "cherrypick" and rest[0] == "search":
        return _search(argv)
    if program == "cherrypick" and rest[0] == "report":
        return _report(argv)
    if program == "cherrypick" and rest[0] == "profile":
        return _profile(argv)
    if program == "cherrypick" and rest[0] == "bench":
        return _bench(argv)
    if program == "cherrypick" and rest[0] == "cleanup":
        return _cleanup(argv)
    if program == "cherrypick" and rest[:2] == ["catalog", "list"]:
        return Case(argv, _catalog_list(argv))
    if program == "python" and rest[:2] == ["-m", "cherrypick.perfmodel"]:
        return Case(argv, _ranking)
    if program == "python" and rest[:2] == ["-m", "cherrypick.perfmodel.published"]:
        return Case(argv, _expect("mean absolute error: ", "Lambda PyTorch benchmark"))
    if program == "python" and rest[:2] == ["-m", "cherrypick.catalog.refresh"]:
        return _refresh(argv, command)
    if program == "python" and rest[:2] == ["-m", "cherrypick.workloads.cnn.train"]:
        return _train(argv)
    if program == "python" and rest[:2] == ["-m", "cherrypick.workloads.cnn.bench"]:
        return _cnn_bench(argv)
    raise AssertionError(
        f"no rule for `{command}`: give it a fast variant in _case() or, with a reason, add it"
        " to ALLOWED"
    )


def _executable(argv: list[str]) -> list[str]:
    """The command with this interpreter: ``cherrypick`` as ``python -m cherrypick``."""
    if argv[0] == "cherrypick":
        return [sys.executable, "-m", "cherrypick", *argv[1:]]
    if argv[0] == "python":
        return [sys.executable, *argv[1:]]
    return argv


def _workdir(path: Path) -> Path:
    """A fresh working directory where the docs' relative ``configs/...`` paths resolve."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "configs").symlink_to(ROOT / "configs", target_is_directory=True)
    return path


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}


def _run(argv: list[str], cwd: Path, timeout: int = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _executable(argv),
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Stores:
    """``NAME.sqlite`` -> a finished dry-run search of ``configs/examples/NAME.yaml`` (once)."""
    built: dict[str, Path] = {}
    where = _workdir(tmp_path_factory.mktemp("stores"))

    def get(name: str) -> Path:
        if name not in built:
            example = f"configs/examples/{Path(name).stem}.yaml"
            done = _run(
                ["cherrypick", "search", example, "--dry-run", "--quiet", "--store", name], where
            )
            assert done.returncode == 0, done.stderr[-2000:]
            built[name] = where / name
        return built[name]

    return get


# --------------------------------------------------------------------------- the tests


def _cases() -> dict[str, Case]:
    """One case per distinct fast variant, named by the commands it stands for; the slowest
    first, so that ``pytest -n 2`` does not end waiting for one of them."""
    runs: dict[tuple[str, ...], tuple[list[str], Case]] = {}
    for text, (doc, argv) in COMMANDS.items():
        if text not in ALLOWED:
            try:
                case = _case(argv)
            except AssertionError as exc:  # a failing test, not a collection error
                case = Case(argv, _no_check, missing=str(exc))
            runs.setdefault(tuple(case.argv), ([], case))[0].append(f"{Path(doc).stem}: {text}")
    slow = ("bench dryrun", "cnn.bench", "profile", "cnn.train")
    order = sorted(
        runs.values(),
        key=lambda r: next((i for i, word in enumerate(slow) if word in r[0][0]), len(slow)),
    )
    return {" | ".join(names): case for names, case in order}


CASES = _cases()


@pytest.mark.parametrize("name", list(CASES))
def test_documented_command_runs(name: str, tmp_path: Path, stores: Stores) -> None:
    case = CASES[name]
    if case.missing:
        pytest.fail(case.missing)
    cwd = _workdir(tmp_path / "work")
    for step in case.setup:
        step(cwd, stores)
    done = _run(case.argv, cwd, case.timeout)
    assert done.returncode == 0, (
        f"`{' '.join(case.argv)}` exited {done.returncode}:\n{done.stderr[-3000:]}"
    )
    case.check(done, cwd)


def test_allowed_commands_are_still_documented() -> None:
    stale = set(ALLOWED) - set(COMMANDS)
    assert not stale, f"ALLOWED names commands the docs no longer have: {stale}"


def test_readme_starts_with_the_two_commands_ci_and_newcomers_run() -> None:
    commands = [
        line
        for block in _blocks(TEXTS["README.md"], "bash")
        for line in _command_lines(block, console=False)
    ]
    assert commands[:2] == [
        "python -m pip install . && cherrypick search configs/examples/resnet50-imagenet.yaml"
        " --dry-run",
        'python -m pip install -e ".[test]" && python -m pytest -n 2 -q',
    ]


@pytest.mark.parametrize("doc", list(TEXTS))
def test_no_command_refers_to_a_folder_outside_the_clone(doc: str) -> None:
    assert "../shared" not in TEXTS[doc]


def test_readme_is_short() -> None:
    lines = len(TEXTS["README.md"].splitlines())
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; move detail to docs/"


def test_commands_are_found() -> None:
    assert len(COMMANDS) >= 20, sorted(COMMANDS)
    for doc in TEXTS:
        assert any(where == doc for where, _ in COMMANDS.values()), f"no command in {doc}"


def _inline_commands() -> list[tuple[str, str]]:
    """Commands named in the prose (`cherrypick bench replay`, `python -m ...`), each once."""
    found: dict[str, str] = {}
    for doc, text in TEXTS.items():
        for span in re.findall(r"`((?:cherrypick|python -m) [^`]+)`", text):
            found.setdefault(span, doc)
    return [(doc, span) for span, doc in found.items()]


@functools.cache
def _cli_names() -> dict[str, set[str]]:
    from cherrypick.cli import COMMANDS as SUBCOMMANDS
    from cherrypick.cli import build_parser

    names: dict[str, set[str]] = {name: set() for name in SUBCOMMANDS}
    for action in build_parser(["bench"])._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices["bench"]._actions:
                if isinstance(sub, argparse._SubParsersAction):
                    names["bench"] = set(sub.choices)
    return names


@pytest.mark.parametrize(
    "doc, span", _inline_commands(), ids=[f"{d}: {s}" for d, s in _inline_commands()]
)
def test_commands_named_in_the_text_exist(doc: str, span: str) -> None:
    words = span.split()
    if words[0] == "python":
        assert importlib.util.find_spec(words[2]) is not None, f"no module {words[2]}"
        return
    names = _cli_names()
    assert words[1] in names, f"no subcommand `cherrypick {words[1]}`"
    if words[1] == "bench" and len(words) > 2 and words[2].islower():
        assert words[2] in names["bench"], f"no benchmark `cherrypick bench {words[2]}`"


# --------------------------------------------------------------------------- Python and YAML

PYTHON = [(doc, code) for doc, text in TEXTS.items() for code in _blocks(text, "python")]


@pytest.mark.parametrize(
    "code",
    [code for _, code in PYTHON],
    ids=[f"{doc}: python {i}" for i, (doc, _) in enumerate(PYTHON)],
)
def test_python_block_runs(code: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(code)
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Recommendation" in done.stdout or "Choice" in done.stdout


def test_readme_keeps_the_custom_workload_example() -> None:
    (fine_tune,) = [code for doc, code in PYTHON if "class FineTune(Workload)" in code]
    assert "from cherrypick.workloads.base import TrialResult, Workload" in fine_tune
    assert any(doc == "README.md" and code == fine_tune for doc, code in PYTHON)


SEARCH_FILES = [
    (doc, block)
    for doc, text in TEXTS.items()
    for block in _blocks(text, "yaml")
    if "workload:" in block
]


@pytest.mark.parametrize(
    "text",
    [b for _, b in SEARCH_FILES],
    ids=[f"{d}: search file {i}" for i, (d, _) in enumerate(SEARCH_FILES)],
)
def test_search_file_example_is_valid(text: str) -> None:
    import yaml

    from cherrypick.spec import parse_spec

    spec = parse_spec(yaml.safe_load(text), source="the docs' example")
    assert spec.workload.name == "cnn"


INVENTORIES = [
    (doc, block)
    for doc, text in TEXTS.items()
    for block in _blocks(text, "yaml")
    if "hosts:" in block
]


@pytest.mark.parametrize(
    "text",
    [b for _, b in INVENTORIES],
    ids=[f"{d}: inventory {i}" for i, (d, _) in enumerate(INVENTORIES)],
)
def test_inventory_example_is_valid(text: str, tmp_path: Path) -> None:
    """The docs' inventories validate, with their key files (and known_hosts) made to exist."""
    import yaml
    from cherrypick.providers.inventory import parse_inventory

    data = yaml.safe_load(text)
    key = tmp_path / "id_ed25519"
    key.write_text("a private key would be here\n")
    known = tmp_path / "known_hosts"
    some_key = next(h["host_key"] for h in data["hosts"] if "host_key" in h)
    known.write_text("".join(f"{h['address']} {some_key}\n" for h in data["hosts"]))
    for section in [data.get("defaults", {}), *data["hosts"]]:
        for name, path in (("key_file", key), ("known_hosts", known)):
            if name in section:
                section[name] = str(path)
    inventory = parse_inventory(yaml.safe_dump(data), "the docs' inventory")
    assert inventory.offerings()
