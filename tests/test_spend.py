"""A search that costs less than it saves: trials priced before they run, a trial chosen and the
search stopped by what a trial may save on the job against what it costs, the performance
model's pick before any trial (a job smaller than a trial, ``--trials 0``), the expected spend
printed first, and the dry-run benchmark's spend figures."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from cherrypick.bench.dryrun import Outcome, _spend
from cherrypick.bench.nosearch import no_search_picks
from cherrypick.cli import main
from cherrypick.optimizer import (
    BayesianStrategy,
    BOConfig,
    Objective,
    Observation,
    Problem,
    StopRule,
)
from cherrypick.optimizer._spend import forecast_spend, surest_untried, trials_pay
from cherrypick.perfmodel import PerformanceModel
from cherrypick.searching.setup import build_space, build_workload
from cherrypick.spec import load_spec
from cherrypick.store import TrialStore

EXAMPLES = Path(__file__).resolve().parents[1] / "configs" / "examples"


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def _problem(trial_cost: np.ndarray | None, scale: float = 1.0) -> tuple[Problem, np.ndarray]:
    """24 candidates (nodes 1..8 of three sizes), a prior off by 20% on the biggest size."""
    rows, runtimes = [], []
    for cores in (2, 4, 8):
        for nodes in range(1, 9):
            rows.append([math.log(nodes), math.log(cores)])
            runtimes.append(scale * (200.0 + 36000.0 / (nodes * cores)))
    truth = np.array(runtimes)
    prices = np.array([p * n for p in (0.1, 0.19, 0.4) for n in range(1, 9)])
    prior = truth * np.where(np.arange(24) >= 16, 1.2, 1.0)
    groups = np.repeat(np.arange(3), 8).astype(np.int64)
    problem = Problem(
        np.array(rows),
        prices,
        Objective(),
        prior_runtime_s=prior,
        groups=groups,
        trial_cost_usd=trial_cost,
    )
    return problem, truth


def _first_pick(aware: bool, cost: np.ndarray) -> tuple[BayesianStrategy, int]:
    problem, truth = _problem(cost)
    strategy = BayesianStrategy(problem, 0, StopRule(min_trials=6, cost_aware=aware), BOConfig())
    (first,) = strategy.ask(1)
    strategy.tell(Observation(first, float(truth[first])))
    (second,) = strategy.ask(1)
    return strategy, second


def test_a_trial_is_chosen_for_what_it_may_save_less_what_it_costs() -> None:
    cost = np.full(24, 0.5)
    blind_strategy, blind = _first_pick(False, cost)
    cost[blind] = 50.0  # the pick a cost-blind search makes now costs more than any saving
    aware_strategy, aware = _first_pick(True, cost)
    assert aware != blind
    scores = aware_strategy.scores()
    assert scores.trial_cost is not None
    np.testing.assert_allclose(scores.saving - scores.values, scores.trial_cost)
    assert blind_strategy.scores().trial_cost is None


def test_a_search_stops_once_no_trial_pays_for_itself_before_min_trials() -> None:
    problem, truth = _problem(np.full(24, 1e3))  # every trial dearer than the whole job
    aware = BayesianStrategy(problem, 0, StopRule(min_trials=6, cost_aware=True), BOConfig())
    blind = BayesianStrategy(problem, 0, StopRule(min_trials=6, cost_aware=False), BOConfig())
    for strategy in (aware, blind):
        (i,) = strategy.ask(1)
        strategy.tell(Observation(i, float(truth[i])))
    assert aware.no_trial_pays() and aware.should_stop()
    assert not blind.no_trial_pays() and not blind.should_stop()


def test_before_any_trial_the_pick_and_whether_trials_pay_follow_the_prior() -> None:
    problem, _ = _problem(np.full(24, 0.01))
    strategy = BayesianStrategy(problem, 0, StopRule(min_trials=3, cost_aware=True), BOConfig())
    found = surest_untried(strategy, 0.10)
    assert found is not None
    prior_cost = problem.prior_runtime_s * problem.price_per_hour  # type: ignore[operator]
    assert found[0] in np.argsort(prior_cost)[:5]  # of the model's five cheapest, the surest
    assert trials_pay(strategy, found[0])
    dear, _ = _problem(np.full(24, 1e3))
    dear_strategy = BayesianStrategy(dear, 0, StopRule(cost_aware=True), BOConfig())
    assert not trials_pay(dear_strategy, found[0])
    assert trials_pay(dear_strategy, None)  # no pick to save on


def test_a_cost_aware_search_may_recommend_a_configuration_it_did_not_try() -> None:
    """Exact prior; the cheapest candidate (18% under the next) is left untried: the model is
    surer of it than of the best tried run, which is what a cost-aware search recommends."""
    rows, runtimes, prices = [], [], []
    for cores, price in ((2, 0.1), (4, 0.15), (8, 0.4)):
        for nodes in range(1, 9):
            rows.append([math.log(nodes), math.log(cores)])
            runtimes.append(2000.0 + 36000.0 / (nodes * cores))
            prices.append(price * nodes)
    truth, price = np.array(runtimes), np.array(prices)
    cheapest = int(np.argmin(truth * price))
    problem = Problem(
        np.array(rows),
        price,
        Objective(),
        prior_runtime_s=truth,
        groups=np.repeat(np.arange(3), 8).astype(np.int64),
        trial_cost_usd=np.full(24, 0.01),
    )
    strategy = BayesianStrategy(problem, 0, StopRule(min_trials=3, cost_aware=True), BOConfig())
    for i in (cheapest + 1, 0, 16, 1):
        strategy.tell(Observation(i, float(truth[i])))
    found = surest_untried(strategy, 0.10)
    assert found is not None and found[0] == cheapest
    tried = strategy.confidence(0.10)
    assert tried is not None and found[1] > tried
    assert found[1] == strategy.confidence(0.10, index=cheapest)
    assert surest_untried(BayesianStrategy(_problem(None)[0], 0), 0.10) is not None
    blind = Problem(np.array(rows), price, Objective(), trial_cost_usd=np.full(24, 0.01))
    assert surest_untried(BayesianStrategy(blind, 0), 0.10) is None  # no prior, no pick


def test_the_spend_forecast_adds_up_the_trials_it_would_run_and_touches_nothing() -> None:
    cost = np.linspace(0.01, 0.24, 24)
    problem, _ = _problem(cost)
    strategy = BayesianStrategy(problem, 0, StopRule(min_trials=3, cost_aware=True), BOConfig())
    forecast = forecast_spend(strategy, max_trials=10)
    assert forecast is not None and 1 <= forecast.trials <= 10
    assert cost.min() * forecast.trials <= forecast.spend_usd <= cost.max() * forecast.trials
    assert not strategy.observations and not strategy.pending
    assert forecast_spend(BayesianStrategy(_problem(None)[0], 0), 10) is None


def test_a_trial_costs_what_the_model_predicts_up_to_the_boot_time() -> None:
    from cherrypick.providers.simulated import SimulatedProvider

    spec = load_spec(str(EXAMPLES / "resnet50-imagenet.yaml"))
    space, workload = build_space(spec), build_workload(spec)
    model = PerformanceModel(space.gpus)
    sim = SimulatedProvider(3, gpus=space.gpus, noise=0.0, model_error=0.0)
    checked = 0
    for candidate in space.candidates[::25]:
        run = sim.execute(candidate, [], workload, spec.trial_timeout_s)
        if run.result.status.value != "ok":
            continue
        assert abs(model.trial_seconds(candidate, workload) - run.billed_s) <= (150 - 45) / 2
        checked += 1
    assert checked >= 5


def _search(*args: str) -> tuple[int, dict[str, object], str]:
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["search", *args, "--dry-run", "--json"])
    return code, json.loads(out.getvalue()) if out.getvalue() else {}, err.getvalue()


def test_a_job_smaller_than_any_trial_is_offered_the_models_pick_before_the_first_trial() -> None:
    path = str(EXAMPLES / "alexnet-10class.yaml")
    code, result, err = _search(path)
    assert code == 0, err
    said = err.index("no trial is expected to save more on the job than it costs")
    assert said < err.index("trial   0") and "--trials 0 takes the pick" in err
    assert int(result["trials_used"]) >= 1  # type: ignore[call-overload]
    code, untried, err = _search(path, "--trials", "0", "--store", "pick.sqlite")
    assert code == 0, err
    rec = untried["recommendation"]
    assert isinstance(rec, dict) and rec["trial_id"] is None
    assert untried["trials_used"] == 0 and untried["search_cost_usd"] == 0.0
    assert 0.0 < float(untried["confidence"]) <= 1.0  # type: ignore[arg-type]
    with TrialStore("pick.sqlite", create=False) as store:
        assert store.status() == "finished" and not store.trials()
    again_code, again, again_err = _search(path, "--trials", "0", "--store", "pick.sqlite")
    assert again_code == 0 and again["recommendation"] == rec  # shown again from the store
    assert "already finished" in again_err


def test_trials_0_recommends_the_models_pick_and_needs_a_prior(tmp_path: Path) -> None:
    path = EXAMPLES / "resnet50-imagenet.yaml"
    code, result, err = _search(str(path), "--trials", "0")
    assert code == 0, err
    rec = result["recommendation"]
    assert isinstance(rec, dict) and rec["trial_id"] is None and rec["nodes"] >= 1
    assert result["trials_used"] == 0 and "--trials 0" in str(result["stopped_because"])
    blind = yaml.safe_load(path.read_text())
    blind["prior"] = "none"
    blind["store"] = "blind.sqlite"
    blind_path = tmp_path / "blind.yaml"
    blind_path.write_text(yaml.safe_dump(blind))
    code, result, err = _search(str(blind_path), "--trials", "0")
    assert code == 2 and not result and "Traceback" not in err
    assert "budget.max_trials 0" in err and "prior: performance-model" in err
    assert not Path("blind.sqlite").exists()  # refused before it began: no store left


def test_the_expected_spend_is_printed_before_the_first_trial() -> None:
    code, result, err = _search(str(EXAMPLES / "resnet50-imagenet.yaml"))
    assert code == 0
    first_trial = err.index("trial   0")
    assert -1 < err.find("expected search spend: $") < first_trial
    assert -1 < err.find("the performance model's pick: ") < first_trial
    assert int(result["trials_used"]) >= 1  # type: ignore[call-overload]


def test_no_search_picks_follow_their_rules() -> None:
    spec = load_spec(str(EXAMPLES / "resnet50-imagenet.yaml"))
    candidates = build_space(spec).catalog
    runtimes = [3600.0 * (1 + i % 7) for i in range(len(candidates))]
    picks = no_search_picks(candidates, runtimes, deadline=3 * 3600.0)
    prices = [c.price_per_hour for c in candidates]
    assert picks["cheapest $/h"] == int(np.argmin(prices))
    in_time = [i for i, r in enumerate(runtimes) if r <= 3 * 3600.0]
    assert picks["cheapest in time"] == min(in_time, key=prices.__getitem__)
    one = candidates[picks["1x A100"]]  # type: ignore[index]
    assert (one.nodes, one.offering.gpus_per_node) == (1, 1) and "A100" in one.offering.gpu
    eight = candidates[picks["8x A100"]]  # type: ignore[index]
    assert (eight.nodes, eight.offering.gpus_per_node) == (1, 8) and "A100" in eight.offering.gpu
    big = candidates[picks["biggest box"]]  # type: ignore[index]
    most = max(c.offering.gpus_per_node * c.offering.gpu_memory_gib for c in candidates)
    assert big.nodes == 1 and big.offering.gpus_per_node * big.offering.gpu_memory_gib == most


def test_the_benchmark_sets_spend_and_search_plus_job_against_the_optimal_job() -> None:
    def outcome(spend: float, job: float, cheapest: float | None) -> Outcome:
        return Outcome(
            "resnet50-imagenet",
            0.5,
            0,
            0.0,
            0.0,
            3,
            False,
            spend_usd=spend,
            optimum_usd=10.0,
            job_usd=job,
            no_search={"cheapest $/h": cheapest},
        )

    line = _spend([outcome(1.0, 10.0, 1.5), outcome(3.0, 11.0, None)])
    assert "spend / optimal job  0.20x (worst 0.30x)" in line
    assert "search + job  1.25x" in line
    assert "cheapest $/h 1.50x (late 50%)" in line


def test_by_default_trials_count_as_free_and_cost_aware_searches_spend_less(
    tmp_path: Path,
) -> None:
    problem, _ = _problem(np.full(24, 1e3))
    assert BayesianStrategy(problem, 0, StopRule()).trial_cost is None  # the rule's default
    spec = yaml.safe_load((EXAMPLES / "resnet50-imagenet.yaml").read_text())
    spec["stop"]["cost_aware"] = True
    aware_path = tmp_path / "aware.yaml"
    aware_path.write_text(yaml.safe_dump(spec))
    code, blind, err = _search(str(EXAMPLES / "resnet50-imagenet.yaml"))
    assert code == 0, err
    code, aware, err = _search(str(aware_path))
    assert code == 0, err
    spent = float(aware["search_cost_usd"])  # type: ignore[arg-type]
    assert spent < 0.5 * float(blind["search_cost_usd"])  # type: ignore[arg-type]
    rec = aware["recommendation"]
    assert isinstance(rec, dict) and spent < 0.2 * float(rec["cost_usd"])


def test_the_report_of_a_search_without_trials_shows_the_models_pick(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, result, err = _search(str(EXAMPLES / "resnet50-imagenet.yaml"), "--trials", "0")
    assert code == 0, err
    assert main(["report", "resnet50-imagenet.sqlite", "--out", "out"]) == 0
    out = capsys.readouterr().out
    rec = result["recommendation"]
    assert isinstance(rec, dict)
    line = next(x for x in out.splitlines() if x.startswith("recommendation"))
    assert line.startswith("recommendation, untried: ") and rec["instance_type"] in line
    assert f"${rec['cost_usd']:,.2f}" in line and "performance model's prediction" in line


def test_a_cost_aware_search_takes_the_pick_untried_where_no_trial_pays(tmp_path: Path) -> None:
    spec = yaml.safe_load((EXAMPLES / "alexnet-10class.yaml").read_text())
    spec["stop"]["cost_aware"] = True
    path = tmp_path / "aware.yaml"
    path.write_text(yaml.safe_dump(spec))
    code, result, err = _search(str(path))
    assert code == 0, err
    rec = result["recommendation"]
    assert isinstance(rec, dict) and rec["trial_id"] is None
    assert result["trials_used"] == 0 and result["search_cost_usd"] == 0.0
    assert "no trial is expected to save more" in str(result["stopped_because"])
    assert "trial   0" not in err


def test_a_cost_aware_search_recommends_an_untried_configuration_it_is_surer_of(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 4-hour deadline for ResNet-50: some of a few seeds' searches end recommending what
    they did not try; the result, its store and the report all say so."""
    untried = []
    for seed in range(4):
        spec = yaml.safe_load((EXAMPLES / "resnet50-imagenet.yaml").read_text())
        spec["stop"]["cost_aware"] = True
        spec["seed"] = seed
        spec["objective"]["max_runtime_s"] = 4 * 3600
        spec["store"] = str(tmp_path / f"s{seed}.sqlite")
        path = tmp_path / f"s{seed}.yaml"
        path.write_text(yaml.safe_dump(spec))
        code, result, err = _search(str(path))
        assert code == 0, err
        rec = result["recommendation"]
        assert isinstance(rec, dict) and float(rec["runtime_s"]) <= 4 * 3600
        if rec["trial_id"] is None:
            untried.append((seed, rec, result))
    assert untried
    seed, rec, result = untried[0]
    assert int(result["trials_used"]) >= 1  # type: ignore[call-overload]
    tried = result["tried_confidence"]
    assert tried is None or float(tried) < float(result["confidence"])  # type: ignore[arg-type]
    assert str(result["why"]).startswith("untried: the model is surer of it")
    with TrialStore(tmp_path / f"s{seed}.sqlite", create=False) as store:
        tried = {
            (c.provider, c.region, c.instance_type, c.nodes)
            for c in (r.candidate for r in store.trials())
        }
    assert (rec["provider"], rec["region"], rec["instance_type"], rec["nodes"]) not in tried
    capsys.readouterr()
    assert main(["report", str(tmp_path / f"s{seed}.sqlite"), "--out", "out"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("recommendation"))
    assert line.startswith("recommendation, untried: ") and rec["instance_type"] in line
