"""The simulated provider: determinism, capacity errors, machine lifecycle, trial answers."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
from cherrypick.providers.base import (
    TAG_NODE_RANK,
    TAG_SEARCH,
    TAG_TRIAL,
    Candidate,
    InstanceState,
    LaunchRequest,
    Placement,
    TrialRun,
    machine_tags,
    provider_registry,
)
from cherrypick.providers.simulated import SimulatedProvider
from cherrypick.workloads.base import TrialResult, Workload
from cherrypick.workloads.cnn.workload import CNNWorkload

from cherrypick.catalog import CatalogFilter, load_catalog, load_gpus
from cherrypick.errors import CapacityError, ProvisioningError, WorkloadError

GPUS = load_gpus()
CANDIDATES = CatalogFilter(providers=["aws"], gpus=["T4", "A10G", "V100"], max_nodes=2).candidates(
    load_catalog(["aws"], gpus=GPUS), GPUS
)
RESNET = CNNWorkload({"model": "resnet50", "batch_size": 64, "precision": "fp16"})


class _NoModel(Workload):
    name = "opaque"

    def setup_commands(self) -> list[str]:
        return []

    def command(self, candidate: Candidate, node_rank: int, addr: str, port: int) -> str:
        return "true"

    def parse_result(self, raw: bytes) -> TrialResult:
        return TrialResult("error", None)


class _Estimated(_NoModel):
    def estimate_runtime(self, candidate: Candidate) -> float | None:
        return 1000.0 * candidate.nodes


def run_all(provider: SimulatedProvider, candidates: Sequence[Candidate]) -> dict[str, TrialRun]:
    return {c.key: provider.execute(c, [], RESNET, timeout_s=3600) for c in candidates}


def test_same_seed_gives_same_results_in_any_order() -> None:
    forward = run_all(SimulatedProvider(7, gpus=GPUS), CANDIDATES)
    backward = run_all(SimulatedProvider(7, gpus=GPUS), list(reversed(CANDIDATES)))
    assert forward == backward
    fresh = SimulatedProvider(7, gpus=GPUS)
    one = CANDIDATES[3]
    assert fresh.execute(one, [], RESNET, 3600) == forward[one.key]


def test_another_seed_gives_other_noise_around_the_model() -> None:
    a = SimulatedProvider(1, gpus=GPUS, model_error=0.0)
    b = SimulatedProvider(2, gpus=GPUS, model_error=0.0)
    factors = [(a.noise_factor(c), b.noise_factor(c)) for c in CANDIDATES]
    assert all(x != y for x, y in factors)
    logs = [math.log(x) for x, _ in factors]
    assert max(abs(v) for v in logs) < 5 * 0.05  # sigma = 0.05
    quiet = SimulatedProvider(1, gpus=GPUS, noise=0.0, model_error=0.0)
    run = quiet.execute(CANDIDATES[0], [], RESNET, 3600)
    predicted = quiet.model.predict(CANDIDATES[0], RESNET.simulation_profile())
    assert run.result.runtime_s == predicted.runtime_s


def test_model_error_is_shared_by_a_gpu_and_grows_with_nodes() -> None:
    """Without run noise, what remains is the cloud's systematic departure from the model: one
    factor per GPU model, and on several nodes one per provider network growing with log2(n)."""
    truth = SimulatedProvider(3, gpus=GPUS, noise=0.0, model_error=0.1)
    single = [c for c in CANDIDATES if c.nodes == 1]
    by_gpu: dict[str, set[float]] = {}
    for c in single:
        by_gpu.setdefault(c.offering.gpu, set()).add(round(truth.noise_factor(c), 12))
    assert all(len(factors) == 1 for factors in by_gpu.values())  # shared by a GPU model
    assert len({f for factors in by_gpu.values() for f in factors}) == len(by_gpu)
    pairs = [
        (a, b)
        for a in single
        for b in CANDIDATES
        if b.nodes == 2 and b.offering.key == a.offering.key
    ]
    network = {round(truth.noise_factor(b) / truth.noise_factor(a), 12) for a, b in pairs}
    assert len(network) == 1 and network != {1.0}  # one aws network, not the model's nominal one
    exact = SimulatedProvider(3, gpus=GPUS, noise=0.0, model_error=0.0)
    assert {exact.noise_factor(c) for c in CANDIDATES} == {1.0}


def test_the_performance_model_is_the_noise_free_truth() -> None:
    provider = SimulatedProvider(5, gpus=GPUS)
    c = CANDIDATES[0]
    expected = provider.model.predict(c, RESNET.simulation_profile()).runtime_s
    assert provider.model.runtime(c, RESNET) == expected
    run = provider.execute(c, [], RESNET, 3600)
    assert run.result.runtime_s == pytest.approx(expected * provider.noise_factor(c))
    huge = CNNWorkload({"model": "vgg16", "batch_size": 4096, "precision": "fp32"})
    assert provider.model.runtime(c, huge) is None  # predicted out of memory


def test_ok_trial_has_result_json_shape_and_plausible_times() -> None:
    provider = SimulatedProvider(gpus=GPUS, boot_s=(45.0, 150.0))
    run = provider.execute(CANDIDATES[0], [], RESNET, 3600)
    details = run.result.details
    assert run.result.status == "ok" and details["simulated"] is True
    assert details["projected_job_seconds"] == run.result.runtime_s
    assert set(details["breakdown_ms"]) >= {"data", "h2d", "forward", "backward", "communication"}
    assert [row["name"] for row in details["layers"]][-1] == "loss"
    assert 45.0 <= run.boot_s <= 150.0 and run.setup_s >= 120.0
    assert 0 < run.run_s < (run.result.runtime_s or 0)
    assert details["throughput_images_s"] == pytest.approx(
        details["job"]["global_batch"] * 1000 / details["iteration_ms"]
    )


def test_too_big_a_batch_is_an_oom_trial() -> None:
    huge = CNNWorkload({"model": "vgg16", "batch_size": 1024, "precision": "fp32"})
    t4 = next(c for c in CANDIDATES if c.offering.gpu == "T4")
    result = SimulatedProvider(gpus=GPUS).execute(t4, [], huge, 3600).result
    assert result.status == "oom" and result.runtime_s is None
    assert "out of memory" in result.message


def test_slow_trial_times_out() -> None:
    t4 = next(c for c in CANDIDATES if c.offering.gpu == "T4")
    run = SimulatedProvider(gpus=GPUS).execute(t4, [], RESNET, timeout_s=10)
    assert run.result.status == "timeout" and run.run_s == 10


def test_workload_estimate_is_used_with_noise() -> None:
    provider = SimulatedProvider(3, gpus=GPUS)
    two_nodes = next(c for c in CANDIDATES if c.nodes == 2)
    run = provider.execute(two_nodes, [], _Estimated(), 3600)
    assert run.result.runtime_s == pytest.approx(2000.0 * provider.noise_factor(two_nodes))


def test_workload_without_a_model_cannot_be_simulated() -> None:
    with pytest.raises(WorkloadError, match="cannot be simulated"):
        SimulatedProvider(gpus=GPUS).execute(CANDIDATES[0], [], _NoModel(), 3600)


def request(candidate: Candidate, search: str = "s", trial: int = 0) -> LaunchRequest:
    tags = machine_tags(search, trial, "me")
    return LaunchRequest(
        candidate, Placement(candidate.offering.region), f"{search}-{trial}", tags, 3600.0
    )


def count_capacity_errors(provider: SimulatedProvider, attempts: int) -> int:
    errors = 0
    for candidate in CANDIDATES:
        for _ in range(attempts):
            try:
                provider.run_instances(request(candidate))
            except CapacityError as exc:
                assert exc.region == candidate.offering.region
                errors += 1
    return errors


def test_capacity_errors_come_at_the_configured_rate_deterministically() -> None:
    total = len(CANDIDATES) * 20
    errors = count_capacity_errors(SimulatedProvider(5, gpus=GPUS, capacity_error_rate=0.3), 20)
    assert 0.2 * total < errors < 0.4 * total
    again = count_capacity_errors(SimulatedProvider(5, gpus=GPUS, capacity_error_rate=0.3), 20)
    assert again == errors
    assert count_capacity_errors(SimulatedProvider(5, gpus=GPUS), 3) == 0


def test_run_wait_query_list_terminate_lifecycle() -> None:
    provider = SimulatedProvider(gpus=GPUS)
    two_nodes = next(c for c in CANDIDATES if c.nodes == 2)
    record = provider.run_instances(request(two_nodes, "search-1", 3))
    other = provider.run_instances(request(CANDIDATES[0], "search-2"))
    assert len(record.instance_ids) == 2 and len(set(record.instance_ids)) == 2
    again = SimulatedProvider(gpus=GPUS).run_instances(request(two_nodes, "search-1", 3))
    assert again.instance_ids == record.instance_ids  # stable ids
    cluster = provider.wait_instances(record, timeout_s=1)
    assert [i.node_rank for i in cluster.instances] == [0, 1]
    assert cluster.head.tags[TAG_TRIAL] == "3" and cluster.instances[1].tags[TAG_NODE_RANK] == "1"
    region = record.placement.region
    assert set(provider.query_instances(region, record.instance_ids).values()) == {"running"}
    found = provider.list_launched({TAG_SEARCH: "search-1"})
    assert {i.instance_id for i in found} == set(record.instance_ids)
    assert provider.list_launched({TAG_SEARCH: "search-1", TAG_TRIAL: "4"}) == []
    provider.terminate_instances(region, record.instance_ids)
    provider.terminate_instances(region, record.instance_ids)  # already gone: not an error
    states = provider.query_instances(region, [*record.instance_ids, "never-launched"])
    assert set(states.values()) == {InstanceState.TERMINATED}
    assert provider.list_launched({TAG_SEARCH: "search-1"}) == []
    assert [i.instance_id for i in provider.list_launched({TAG_SEARCH: "search-2"})] == list(
        other.instance_ids
    )
    with pytest.raises(ProvisioningError):
        provider.wait_instances(record, timeout_s=1)


def test_registered_by_name() -> None:
    assert isinstance(provider_registry.create("simulated"), SimulatedProvider)


def _near(batch: int) -> CNNWorkload:
    """ResNet-50 in fp16 near the 16 GiB of a T4 or a V100: at 304 the model says it fits
    (14.9 GiB), at 336 that it does not (16.3 GiB)."""
    return CNNWorkload({"model": "resnet50", "batch_size": batch, "precision": "fp16"})


def test_memory_error_is_one_factor_per_gpu_drawn_from_the_seed() -> None:
    provider = SimulatedProvider(4, gpus=GPUS, memory_error=0.5)
    factors = {c.key: provider.memory_factor(c) for c in CANDIDATES}
    by_gpu: dict[str, set[float]] = {}
    for c in CANDIDATES:
        by_gpu.setdefault(c.offering.gpu, set()).add(factors[c.key])
    assert all(len(f) == 1 for f in by_gpu.values())
    assert len(set(factors.values())) == len(by_gpu) == 3
    other = SimulatedProvider(5, gpus=GPUS, memory_error=0.5)
    assert all(other.memory_factor(c) != factors[c.key] for c in CANDIDATES)
    assert {SimulatedProvider(4, gpus=GPUS).memory_factor(c) for c in CANDIDATES} == {1.0}
    near = _near(336)
    forward = {c.key: provider.execute(c, [], near, 3600) for c in CANDIDATES}
    fresh = SimulatedProvider(4, gpus=GPUS, memory_error=0.5)
    assert {c.key: fresh.execute(c, [], near, 3600) for c in reversed(CANDIDATES)} == forward


@pytest.mark.parametrize(("batch", "modelled"), [(336, "oom"), (304, "ok")])
def test_memory_error_changes_which_candidates_run_out_of_memory(batch: int, modelled: str) -> None:
    """Off, the truth is the model's verdict on every seed; on, a GPU near its limit fits on some
    seeds and not on others, both ways, and what runs runs as fast as without the error."""
    workload = _near(batch)
    near = [c for c in CANDIDATES if c.offering.gpu in ("T4", "V100") and c.nodes == 1]
    seen: dict[str, int] = {"ok": 0, "oom": 0}
    for seed in range(12):
        exact = SimulatedProvider(seed, gpus=GPUS)
        erring = SimulatedProvider(seed, gpus=GPUS, memory_error=0.5)
        for c in near:
            assert exact.execute(c, [], workload, 3600).result.status == modelled
            result = erring.execute(c, [], workload, 3600).result
            seen[result.status] += 1
            peak = result.details["memory"]["peak_gpu_bytes"]
            assert (peak > c.offering.gpu_memory_gib * 2**30) == (result.status == "oom")
            if result.status == "ok":
                profile = workload.simulation_profile()
                expected = exact.model.predict(c, profile).runtime_s * exact.noise_factor(c)
                assert result.runtime_s == pytest.approx(expected)
    assert seen["ok"] > 0 and seen["oom"] > 0


def test_at_the_priors_sigma_the_truth_fits_as_often_as_the_prior_says() -> None:
    """``memory_error`` = ``MEMORY_SIGMA``: over seeds, a GPU's chance of fitting is the prior's."""
    from cherrypick.perfmodel import MEMORY_SIGMA, fit_probability, memory_parts

    profile = _near(320).simulation_profile()
    counted, estimated = memory_parts(profile)
    t4 = next(c for c in CANDIDATES if c.offering.gpu == "T4")
    limit = t4.offering.gpu_memory_gib * 2**30
    fits = [
        counted + estimated * SimulatedProvider(seed, memory_error=MEMORY_SIGMA).memory_factor(t4)
        <= limit
        for seed in range(400)
    ]
    expected = fit_probability(profile, limit)
    assert 0.3 < expected < 0.9
    assert sum(fits) / len(fits) == pytest.approx(expected, abs=0.07)
