"""The GCP provider against the real googleapiclient compute v1 client (its bundled discovery
document, offline) over a stateful fake (tests/fake_gcp.py) or a scripted HttpMockSequence:
request bodies, image and zone resolution, both error paths and their classification, retry
with backoff, rollback, termination, listing by tag, quotas, doctor and cleanup."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httplib2
import pytest
from cherrypick.providers import _cloud
from cherrypick.providers._gcp_errors import classify, operation_error
from cherrypick.providers._gcp_shapes import (
    DEFAULT_IMAGE,
    instance_name,
    labels,
    machine_shape,
    source_image,
)
from cherrypick.providers.base import (
    TAG_NODE_RANK,
    TAG_OWNER,
    TAG_SEARCH,
    Candidate,
    CloudOptions,
    InstanceState,
    LaunchRequest,
    Offering,
    Placement,
    ProvisionRecord,
    machine_tags,
)
from cherrypick.providers.gcp import GcpProvider
from fake_gcp import (
    PROJECT,
    REGION,
    SSH_CIDR,
    ZONES,
    FakeCompute,
    compute_client,
    library_sleep_recorded,
    provider_over,
    t4_candidate,
)
from google.auth import exceptions as auth_errors
from googleapiclient.errors import HttpError
from googleapiclient.http import HttpMockSequence

from cherrypick.errors import (
    CapacityError,
    CredentialsError,
    InputError,
    ProvisioningError,
    QuotaError,
    Scope,
)

SEARCH = "cherrypick-0123456789ab"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHc controller"
ZONE = ZONES[0]
INSERTS = r"zones/[^/]+/instances"


@pytest.fixture(autouse=True)
def library_sleep() -> Iterator[list[float]]:
    """googleapiclient's own retry pause is patched; the provider must never use it."""
    with library_sleep_recorded() as slept:
        yield slept
    assert slept == []


@pytest.fixture
def fake() -> FakeCompute:
    return FakeCompute()


@pytest.fixture
def provider(fake: FakeCompute) -> GcpProvider:
    return provider_over(fake)


def request(
    candidate: Candidate | None = None, zone: str | None = ZONE, trial: int = 1, **tags: str
) -> LaunchRequest:
    candidate = candidate or t4_candidate()
    all_tags = {**machine_tags(SEARCH, trial, "ctl.example:42"), **tags}
    name = f"{all_tags[TAG_SEARCH]}-t{trial}-a0"
    return LaunchRequest(candidate, Placement(REGION, zone), name, all_tags, 3600.0, KEY)


def offering(
    instance_type: str, gpu: str, gpus: int, region: str = REGION, **extra: Any
) -> Offering:
    return Offering(
        "gcp", region, instance_type, 4, 16.0, gpu, gpus, 24.0, "pcie", 1.0, None, extra
    )


def http_error(status: int, reason: str, message: str = "refused") -> HttpError:
    body = {"error": {"code": status, "message": message, "errors": [{"reason": reason}]}}
    return HttpError(httplib2.Response({"status": str(status)}), json.dumps(body).encode())


def answer(status: int, body: dict[str, Any]) -> tuple[dict[str, str], str]:
    return {"status": str(status)}, json.dumps(body)


def op(name: str, status: str = "DONE", **more: Any) -> dict[str, Any]:
    zone = f"https://www.googleapis.com/compute/v1/projects/{PROJECT}/zones/{ZONE}"
    return {"name": name, "status": status, "zone": zone, **more}


def scripted(*answers: tuple[dict[str, str], str], **kwargs: Any) -> tuple[GcpProvider, Any]:
    http = HttpMockSequence(list(answers))
    return provider_over(http, **kwargs), http


# -- request bodies -----------------------------------------------------------------------------


def test_an_n1_launch_asks_for_the_t4_the_scheduling_the_labels_and_the_key(
    provider: GcpProvider, fake: FakeCompute
) -> None:
    record = provider.run_instances(request(t4_candidate(2)))

    bodies = fake.bodies("POST", INSERTS)
    assert [b["name"] for b in bodies] == [f"{SEARCH}-t1-a0-0", f"{SEARCH}-t1-a0-1"]
    body = bodies[1]
    assert body["machineType"] == f"zones/{ZONE}/machineTypes/n1-standard-8"
    assert body["guestAccelerators"] == [
        {"acceleratorType": f"zones/{ZONE}/acceleratorTypes/nvidia-tesla-t4", "acceleratorCount": 1}
    ]
    assert body["scheduling"] == {
        "onHostMaintenance": "TERMINATE",
        "automaticRestart": False,
        "provisioningModel": "STANDARD",
        "instanceTerminationAction": "DELETE",
        "maxRunDuration": {"seconds": "3600"},
    }
    assert body["labels"][TAG_SEARCH] == SEARCH
    assert body["labels"][TAG_NODE_RANK] == "1"
    assert body["labels"][TAG_OWNER] == "ctl_example_42"  # GCP label values: [a-z0-9_-]
    metadata = {item["key"]: item["value"] for item in body["metadata"]["items"]}
    assert metadata == {
        "ssh-keys": f"cherrypick:{KEY}",
        "install-nvidia-driver": "True",
        "startup-script": _cloud.self_destruct_script(3600.0),
    }
    assert body["disks"][0]["initializeParams"]["sourceImage"] == DEFAULT_IMAGE
    assert body["tags"] == {"items": [f"{SEARCH}-ssh"]}
    assert record.instance_ids == (f"{ZONE}/{SEARCH}-t1-a0-0", f"{ZONE}/{SEARCH}-t1-a0-1")
    assert record.placement == Placement(REGION, ZONE)


@pytest.mark.parametrize(
    ("instance_type", "gpu", "gpus", "machine", "accelerator"),
    [
        ("g2-standard-4", "L4", 1, "g2-standard-4", "nvidia-l4"),
        ("a2-highgpu-1g", "A100", 1, "a2-highgpu-1g", "nvidia-tesla-a100"),
        ("a2-ultragpu-8g", "A100-80GB", 8, "a2-ultragpu-8g", "nvidia-a100-80gb"),
        ("a3-megagpu-8g", "H100", 8, "a3-megagpu-8g", "nvidia-h100-mega-80gb"),
    ],
)
def test_machine_types_that_carry_their_gpus_get_no_guest_accelerators(
    fake: FakeCompute, instance_type: str, gpu: str, gpus: int, machine: str, accelerator: str
) -> None:
    shape = machine_shape(offering(instance_type, gpu, gpus))
    assert (shape.machine_type, shape.accelerator, shape.attached) == (machine, accelerator, 0)

    provider_over(fake).run_instances(request(Candidate(offering(instance_type, gpu, gpus))))
    (body,) = fake.bodies("POST", INSERTS)
    assert "guestAccelerators" not in body
    assert body["machineType"] == f"zones/{ZONE}/machineTypes/{machine}"


def test_catalog_n1_rows_name_host_and_attached_gpus() -> None:
    shape = machine_shape(offering("n1-standard-32+4xV100", "V100", 4))
    assert (shape.machine_type, shape.accelerator, shape.attached) == (
        "n1-standard-32",
        "nvidia-tesla-v100",
        4,
    )
    with pytest.raises(InputError, match="no Compute Engine accelerator type for GPU 'X9'"):
        machine_shape(offering("n1-standard-8+1xX9", "X9", 1))


def test_spot_machines_are_spot_and_deleted_when_preempted(fake: FakeCompute) -> None:
    spot = provider_over(fake, CloudOptions(ssh_cidr=SSH_CIDR, spot=True))
    spot.run_instances(request())
    scheduling = fake.bodies("POST", INSERTS)[0]["scheduling"]
    assert scheduling["provisioningModel"] == "SPOT"
    assert scheduling["instanceTerminationAction"] == "DELETE"


@pytest.mark.parametrize(
    ("configured", "expected"),
    [
        (None, "projects/deeplearning-platform-release/global/images/family/"
         "common-cu128-ubuntu-2204-nvidia-570"),
        ("projects/my-proj/global/images/my-image", "projects/my-proj/global/images/my-image"),
        (
            "https://www.googleapis.com/compute/v1/projects/p/global/images/family/f",
            "https://www.googleapis.com/compute/v1/projects/p/global/images/family/f",
        ),
        ("pytorch-2-7-cu128-ubuntu-2204-nvidia-570",
         "projects/deeplearning-platform-release/global/images/family/"
         "pytorch-2-7-cu128-ubuntu-2204-nvidia-570"),
    ],
)  # fmt: skip
def test_the_image_is_the_deep_learning_family_unless_overridden(
    configured: str | None, expected: str
) -> None:
    assert source_image(configured) == expected


def test_the_configured_image_and_user_reach_the_body(fake: FakeCompute) -> None:
    options = CloudOptions(
        image="projects/p/global/images/mine", ssh_user="ubuntu", ssh_cidr=SSH_CIDR
    )
    provider = provider_over(fake, options)
    provider.run_instances(request())
    body = fake.bodies("POST", INSERTS)[0]
    assert body["disks"][0]["initializeParams"]["sourceImage"] == "projects/p/global/images/mine"
    assert {"key": "ssh-keys", "value": f"ubuntu:{KEY}"} in body["metadata"]["items"]
    assert provider.wait_instances(_record(provider), 60).head.ssh_user == "ubuntu"


def _record(provider: GcpProvider) -> ProvisionRecord:
    (machine,) = provider.list_launched({TAG_SEARCH: SEARCH})
    return ProvisionRecord("gcp", Placement(REGION, ZONE), "c", (machine.instance_id,))


def test_instance_names_are_valid_and_keep_their_rank() -> None:
    long = "Trial_" + "x" * 80
    name = instance_name(long, 12)
    assert len(name) <= 63 and name.endswith("-12") and name[0].isalpha()
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")
    assert instance_name("7-trial", 0) == "cp-7-trial-0"
    assert labels({"cherrypick-owner": "Host.Example:1234"}, 3) == {
        "cherrypick-owner": "host_example_1234",
        TAG_NODE_RANK: "3",
    }


def test_one_firewall_rule_per_search_lets_the_caller_reach_ssh(
    provider: GcpProvider, fake: FakeCompute
) -> None:
    provider.run_instances(request(trial=1))
    provider.run_instances(request(trial=2))

    assert fake.count("POST", "global/firewalls") == 1
    rule = fake.firewalls[f"{SEARCH}-ssh"]
    assert rule["allowed"] == [{"IPProtocol": "tcp", "ports": ["22"]}]
    assert rule["sourceRanges"] == [SSH_CIDR]
    assert rule["targetTags"] == [f"{SEARCH}-ssh"]
    assert rule["network"] == "global/networks/default"
    assert rule["direction"] == "INGRESS"


def test_an_existing_rule_gets_the_new_callers_network(fake: FakeCompute) -> None:
    provider_over(fake).run_instances(request(trial=1))
    resumed = provider_over(fake, CloudOptions(ssh_cidr="192.0.2.0/24"))
    resumed.run_instances(request(trial=2))
    assert fake.firewalls[f"{SEARCH}-ssh"]["sourceRanges"] == ["192.0.2.0/24"]


def test_without_ssh_cidr_the_rule_allows_the_callers_own_address(fake: FakeCompute) -> None:
    asked: list[str] = []

    def echo(url: str) -> str:
        asked.append(url)
        return "198.51.100.9\n"

    provider_over(fake, CloudOptions(), fetch_ip=echo).run_instances(request())
    assert fake.firewalls[f"{SEARCH}-ssh"]["sourceRanges"] == ["198.51.100.9/32"]
    assert asked


# -- the two error paths, through the real client -------------------------------------------------


def test_a_refused_insert_403_quota_exceeded_is_a_cloud_wide_quota_error() -> None:
    refused = {
        "error": {
            "code": 403,
            "message": "Quota 'GPUS_ALL_REGIONS' exceeded.  Limit: 0.0 globally.",
            "errors": [{"domain": "usageLimits", "reason": "quotaExceeded"}],
        }
    }
    provider, http = scripted(answer(200, op("fw", zone="")), answer(403, refused))

    with pytest.raises(QuotaError) as raised:
        provider.run_instances(request())

    assert raised.value.scope is Scope.CLOUD
    assert raised.value.quota == "GPUS_ALL_REGIONS"
    uri, method, body, _ = http.request_sequence[1]
    assert method == "POST" and uri.split("?")[0].endswith(
        f"projects/{PROJECT}/zones/{ZONE}/instances"
    )
    assert json.loads(body)["guestAccelerators"][0]["acceleratorCount"] == 1
    assert len(http.request_sequence) == 2  # nothing launched, nothing to roll back


def test_a_refused_insert_for_a_regional_quota_blocks_the_region() -> None:
    refused = {
        "error": {
            "code": 403,
            "message": "Quota 'NVIDIA_T4_GPUS' exceeded.  Limit: 0.0 in region us-central1.",
            "errors": [{"reason": "quotaExceeded"}],
        }
    }
    provider, _ = scripted(answer(200, op("fw", zone="")), answer(403, refused))
    with pytest.raises(QuotaError) as raised:
        provider.run_instances(request())
    assert (raised.value.scope, raised.value.region, raised.value.quota) == (
        Scope.REGION,
        REGION,
        "NVIDIA_T4_GPUS",
    )


@pytest.mark.parametrize(
    "code", ["ZONE_RESOURCE_POOL_EXHAUSTED", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS"]
)
def test_an_operation_done_with_pool_exhausted_is_a_zone_capacity_error(code: str) -> None:
    failed = op("op-1", error={"errors": [{"code": code, "message": "no resources"}]})
    provider, http = scripted(
        answer(200, op("fw", zone="")),
        answer(200, op("op-1", "RUNNING")),
        answer(200, failed),
        answer(
            404, {"error": {"code": 404, "message": "gone", "errors": [{"reason": "notFound"}]}}
        ),
    )

    with pytest.raises(CapacityError) as raised:
        provider.run_instances(request())

    assert not isinstance(raised.value, QuotaError)
    assert (raised.value.scope, raised.value.zone, raised.value.code) == (Scope.ZONE, ZONE, code)
    polled, deleted = http.request_sequence[2], http.request_sequence[3]
    assert polled[0].split("?")[0].endswith(f"zones/{ZONE}/operations/op-1")
    assert deleted[1] == "DELETE"  # what the insert may have left is deleted


@pytest.mark.parametrize(
    ("kind", "error_class", "scope", "quota"),
    [
        ("capacity", CapacityError, Scope.ZONE, None),
        ("capacity_details", CapacityError, Scope.ZONE, None),
        ("quota", QuotaError, Scope.REGION, "NVIDIA_T4_GPUS"),
        ("quota_all_regions", QuotaError, Scope.CLOUD, "GPUS_ALL_REGIONS"),
        ("quota_sync", QuotaError, Scope.CLOUD, "GPUS_ALL_REGIONS"),
        ("credentials", CredentialsError, Scope.CLOUD, None),
        ("unauthenticated", CredentialsError, Scope.CLOUD, None),
        ("invalid", ProvisioningError, None, None),
    ],
)
def test_each_failure_of_the_fake_is_classified(
    provider: GcpProvider,
    fake: FakeCompute,
    kind: str,
    error_class: type[ProvisioningError],
    scope: Scope | None,
    quota: str | None,
) -> None:
    fake.fail(ZONE, kind)
    with pytest.raises(ProvisioningError) as raised:
        provider.run_instances(request())
    assert type(raised.value) is error_class
    assert raised.value.scope is scope
    assert getattr(raised.value, "quota", None) == quota
    if error_class is CredentialsError:
        assert str(raised.value).endswith("run 'cherrypick doctor --provider gcp'")
    assert fake.instances == {}


@pytest.mark.parametrize(
    ("status", "reason", "expected", "scope", "code"),
    [
        (401, "required", CredentialsError, Scope.CLOUD, "required"),
        (403, "forbidden", CredentialsError, Scope.CLOUD, "forbidden"),
        (403, "insufficientPermissions", CredentialsError, Scope.CLOUD, "insufficientPermissions"),
        (403, "accessNotConfigured", CredentialsError, Scope.CLOUD, "accessNotConfigured"),
        (403, "rateLimitExceeded", ProvisioningError, Scope.RETRY, "rateLimitExceeded"),
        (429, "rateLimitExceeded", ProvisioningError, Scope.RETRY, "rateLimitExceeded"),
        (500, "internalError", ProvisioningError, Scope.RETRY, "internalError"),
        (503, "backendError", ProvisioningError, Scope.RETRY, "backendError"),
        (400, "resourceNotReady", ProvisioningError, Scope.RETRY, "resourceNotReady"),
        (404, "notFound", ProvisioningError, None, "notFound"),
        (409, "alreadyExists", ProvisioningError, None, "alreadyExists"),
        (400, "invalid", ProvisioningError, None, "invalid"),
    ],
)
def test_http_errors_are_classified_by_status_and_reason(
    status: int, reason: str, expected: type[ProvisioningError], scope: Scope | None, code: str
) -> None:
    error = classify(http_error(status, reason), REGION, ZONE)
    assert type(error) is expected
    assert error is not None and error.scope is scope and error.code == code


@pytest.mark.parametrize(
    ("exc", "expected", "scope"),
    [
        (auth_errors.DefaultCredentialsError("no ADC"), CredentialsError, Scope.CLOUD),
        (auth_errors.RefreshError("revoked"), CredentialsError, Scope.CLOUD),
        (auth_errors.TransportError("reset"), ProvisioningError, Scope.RETRY),
        (ConnectionResetError("reset"), ProvisioningError, Scope.RETRY),
    ],
)
def test_auth_and_network_errors_are_classified(
    exc: Exception, expected: type[ProvisioningError], scope: Scope
) -> None:
    error = classify(exc, REGION)
    assert type(error) is expected and error is not None and error.scope is scope
    assert classify(KeyError("bug")) is None


@pytest.mark.parametrize(
    ("errors", "expected", "scope", "quota"),
    [
        (
            [{"code": "QUOTA_EXCEEDED", "message": "Quota exceeded.", "errorDetails": [
                {"quotaInfo": {"metricName": "compute.googleapis.com/gpus_all_regions"}}]}],
            QuotaError, Scope.CLOUD, "GPUS_ALL_REGIONS",
        ),
        (
            [{"code": "QUOTA_EXCEEDED", "message": "Quota 'NVIDIA_A100_GPUS' exceeded."}],
            QuotaError, Scope.REGION, "NVIDIA_A100_GPUS",
        ),
        ([{"code": "RESOURCE_OPERATION_RATE_EXCEEDED"}], ProvisioningError, Scope.ZONE, None),
        ([{"code": "UNSUPPORTED_OPERATION", "message": "no"}], ProvisioningError, None, None),
    ],
)  # fmt: skip
def test_operation_errors_are_classified(
    errors: list[dict[str, Any]], expected: type[ProvisioningError], scope: Scope, quota: str | None
) -> None:
    error = operation_error({"status": "DONE", "error": {"errors": errors}}, REGION, ZONE)
    assert type(error) is expected and error is not None and error.scope is scope
    assert getattr(error, "quota", None) == quota
    assert operation_error({"status": "DONE"}, REGION, ZONE) is None


# -- retry, rollback, idempotency -----------------------------------------------------------------


def test_transient_errors_are_retried_with_growing_pauses(fake: FakeCompute) -> None:
    slept: list[float] = []
    provider = provider_over(fake, sleep=slept.append)
    fake.fail(ZONE, "transient", times=2)

    provider.run_instances(request())

    assert fake.count("POST", INSERTS) == 3
    backoff = [s for s in slept if s != 2.0]  # 2.0: the operation polls
    assert len(backoff) == 2 and 0.5 <= backoff[0] <= 1.0 and 1.0 <= backoff[1] <= 2.0
    assert len(fake.instances) == 1


def test_a_zone_that_keeps_failing_transiently_gives_up_for_that_zone(fake: FakeCompute) -> None:
    fake.fail(ZONE, "transient", times=_cloud.RETRY_ATTEMPTS)
    with pytest.raises(ProvisioningError) as raised:
        provider_over(fake).run_instances(request())
    assert raised.value.scope is Scope.ZONE and raised.value.code == "backendError"


@pytest.mark.parametrize("kind", ["capacity", "quota_sync"])
def test_a_launch_failing_at_rank_1_deletes_rank_0(
    provider: GcpProvider, fake: FakeCompute, kind: str
) -> None:
    fake.fail(ZONE, kind, after=1)
    with pytest.raises(CapacityError):
        provider.run_instances(request(t4_candidate(2)))
    assert fake.instances == {}
    assert fake.count("DELETE", rf"zones/{ZONE}/instances/{SEARCH}-t1-a0-0") == 1


def test_a_retried_insert_that_had_succeeded_is_not_an_error(
    provider: GcpProvider, fake: FakeCompute
) -> None:
    fake.instances[(ZONE, f"{SEARCH}-t1-a0-0")] = {"name": "x", "status": "RUNNING", "gets": 0}
    record = provider.run_instances(request())
    assert record.instance_ids == (f"{ZONE}/{SEARCH}-t1-a0-0",)


def test_terminate_is_idempotent_and_confirmed_by_query(
    provider: GcpProvider, fake: FakeCompute
) -> None:
    record = provider.run_instances(request(t4_candidate(2)))
    ids = list(record.instance_ids)
    assert set(provider.query_instances(REGION, ids).values()) == {InstanceState.PENDING}

    provider.terminate_instances(REGION, ids)
    provider.terminate_instances(REGION, [*ids, f"{ZONE}/never-was", "not-an-id"])

    states = provider.query_instances(REGION, [*ids, "not-an-id"])
    assert set(states.values()) == {InstanceState.TERMINATED}
    assert fake.instances == {}


def test_a_stopped_instance_still_exists_until_terminated(
    provider: GcpProvider, fake: FakeCompute
) -> None:
    (instance_id,) = provider.run_instances(request()).instance_ids
    fake.stop(ZONE, instance_id.split("/")[1])

    assert provider.query_instances(REGION, [instance_id]) == {instance_id: InstanceState.STOPPING}
    assert [m.instance_id for m in provider.list_launched({TAG_SEARCH: SEARCH})] == [instance_id]
    provider.terminate_instances(REGION, [instance_id])
    assert provider.query_instances(REGION, [instance_id]) == {
        instance_id: InstanceState.TERMINATED
    }


# -- waiting, listing ------------------------------------------------------------------------------


def test_wait_returns_rank_0_first_with_both_addresses(provider: GcpProvider) -> None:
    record = provider.run_instances(request(t4_candidate(2)))
    cluster = provider.wait_instances(record, 600)
    assert [m.node_rank for m in cluster.instances] == [0, 1]
    head = cluster.head
    assert head.internal_ip.startswith("10.128.") and head.external_ip
    assert (head.ssh_port, head.ssh_user, head.region) == (22, "cherrypick", REGION)
    assert head.tags[TAG_SEARCH] == SEARCH


def test_wait_gives_up_at_its_limit(fake: FakeCompute) -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    provider = provider_over(fake, sleep=sleep, clock=lambda: now[0])
    fake.boot_gets = 10**6
    record = provider.run_instances(request())
    with pytest.raises(ProvisioningError, match="not running with an address after 60 s"):
        provider.wait_instances(record, 60)
    assert 60 <= now[0] <= 70


def test_wait_fails_when_a_machine_is_gone(provider: GcpProvider, fake: FakeCompute) -> None:
    record = provider.run_instances(request(t4_candidate(2)))
    del fake.instances[(ZONE, f"{SEARCH}-t1-a0-1")]  # preempted and deleted
    with pytest.raises(ProvisioningError, match="ended while booting"):
        provider.wait_instances(record, 600)


def test_list_launched_filters_by_labels_over_every_page(fake: FakeCompute) -> None:
    provider = provider_over(fake)
    provider.run_instances(request(t4_candidate(2), trial=1))
    provider.run_instances(request(trial=2))
    provider.run_instances(request(trial=3, **{TAG_SEARCH: "cherrypick-other"}))
    fake.page_size = 1

    found = provider.list_launched({TAG_SEARCH: SEARCH})

    assert sorted(m.instance_id for m in found) == sorted(
        f"{ZONE}/{SEARCH}-t{t}-a0-{r}" for t, r in [(1, 0), (1, 1), (2, 0)]
    )
    listed = [r for r in fake.requests if r.path == "aggregated/instances"]
    assert len(listed) == 3  # one page each
    assert listed[0].query["filter"] == f'(labels.{TAG_SEARCH} = "{SEARCH}")'
    assert provider_over(fake, regions=["europe-west4"]).list_launched({TAG_SEARCH: SEARCH}) == []


# -- zones -------------------------------------------------------------------------------------


def test_without_catalog_zones_the_cloud_says_where_the_type_is(fake: FakeCompute) -> None:
    provider = provider_over(fake)
    n1 = Candidate(offering("n1-standard-8+1xT4", "T4", 1))
    g2 = Candidate(offering("g2-standard-4", "L4", 1))

    assert provider.placements(n1) == tuple(Placement(REGION, z) for z in ZONES)
    assert provider.placements(g2) == provider.placements(n1)
    provider.placements(n1)
    (asked_n1,) = [r for r in fake.requests if r.path == "aggregated/acceleratorTypes"]
    (asked_g2,) = [r for r in fake.requests if r.path == "aggregated/machineTypes"]
    assert asked_n1.query["filter"] == 'name = "nvidia-tesla-t4"'
    assert asked_g2.query["filter"] == 'name = "g2-standard-4"'

    record = provider.run_instances(request(n1, zone=None))
    assert record.placement == Placement(REGION, ZONES[0])


def test_zones_unknown_leave_the_region_and_launching_says_why() -> None:
    forbidden = {"error": {"code": 403, "message": "no", "errors": [{"reason": "forbidden"}]}}
    provider, _ = scripted(answer(403, forbidden), answer(403, forbidden))
    n1 = Candidate(offering("n1-standard-8+1xT4", "T4", 1))
    assert provider.placements(n1) == (Placement(REGION),)
    with pytest.raises(CredentialsError):
        provider.run_instances(request(n1, zone=None))


# -- quotas, doctor, cleanup -------------------------------------------------------------------


def test_quota_shortfall_reads_regional_and_all_region_gpu_quotas_once(fake: FakeCompute) -> None:
    provider = provider_over(fake)
    one, pair = t4_candidate(), t4_candidate(2)
    placement = Placement(REGION, ZONE)
    assert provider.quota_shortfall(pair, placement) is None

    fake.region_quotas[REGION]["NVIDIA_T4_GPUS"] = (0, 0)
    fake.project_quotas["GPUS_ALL_REGIONS"] = (1, 0)
    assert provider.quota_shortfall(pair, placement) is None  # cached: asked once

    fresh = provider_over(fake)
    reason = fresh.quota_shortfall(one, placement)
    assert reason is not None and "'NVIDIA_T4_GPUS' in us-central1 is 0 GPUs, needs 1" in reason
    assert "console.cloud.google.com/iam-admin/quotas" in reason
    fake.region_quotas[REGION]["NVIDIA_T4_GPUS"] = (8, 0)
    later = provider_over(fake)
    assert "'GPUS_ALL_REGIONS' over all regions is 1 GPUs, needs 2" in str(
        later.quota_shortfall(pair, placement)
    )
    assert fake.count("GET", f"regions/{REGION}") == 3


def test_spot_counts_against_the_preemptible_quota_where_granted(fake: FakeCompute) -> None:
    spot = CloudOptions(ssh_cidr=SSH_CIDR, spot=True)
    fake.region_quotas[REGION]["NVIDIA_T4_GPUS"] = (0, 0)
    fake.region_quotas[REGION]["PREEMPTIBLE_NVIDIA_T4_GPUS"] = (4, 0)
    assert provider_over(fake, spot).quota_shortfall(t4_candidate(), Placement(REGION)) is None
    fake.region_quotas[REGION]["PREEMPTIBLE_NVIDIA_T4_GPUS"] = (0, 0)
    assert "NVIDIA_T4_GPUS" in str(
        provider_over(fake, spot).quota_shortfall(t4_candidate(), Placement(REGION))
    )


def test_unreadable_quotas_are_no_reason_to_skip() -> None:
    forbidden = {"error": {"code": 403, "message": "no", "errors": [{"reason": "forbidden"}]}}
    provider, http = scripted(answer(403, forbidden), answer(403, forbidden))
    assert provider.quota_shortfall(t4_candidate(), Placement(REGION)) is None
    assert provider.quota_shortfall(t4_candidate(), Placement(REGION)) is None
    assert len(http.request_sequence) == 2  # each table asked once


def test_doctor_checks_credentials_and_the_gpu_quotas_behind_the_offerings(
    fake: FakeCompute,
) -> None:
    fake.region_quotas[REGION]["NVIDIA_L4_GPUS"] = (0, 0)
    offerings = [
        offering("n1-standard-8+1xT4", "T4", 1),
        offering("g2-standard-4", "L4", 1),
        offering("a2-highgpu-1g", "A100", 1),
        Offering("aws", "us-east-1", "p4d.24xlarge", 96, 1152.0, "A100", 8, 40.0, "nvswitch", 32.8),
    ]

    checks = {c.name: c for c in provider_over(fake).doctor(offerings)}

    assert checks["credentials"].ok
    assert checks["NVIDIA_T4_GPUS in us-central1"].ok
    short = checks["NVIDIA_L4_GPUS in us-central1"]
    assert not short.ok
    assert short.fix == (
        "request a quota increase at https://console.cloud.google.com/iam-admin/quotas"
        " for NVIDIA_L4_GPUS in us-central1"
    )
    unlisted = checks["NVIDIA_A100_GPUS in us-central1"]
    assert unlisted.ok and "lists no NVIDIA_A100_GPUS quota: not checked" in unlisted.detail
    assert checks["GPUS_ALL_REGIONS over all regions"].ok
    assert len(checks) == 5  # the AWS offering is not this provider's


def test_doctor_reports_missing_credentials_without_raising() -> None:
    def no_adc() -> tuple[Any, str | None]:
        raise auth_errors.DefaultCredentialsError("Your default credentials were not found")

    provider = GcpProvider(CloudOptions(project="p"), default_credentials=no_adc)
    (check,) = provider.doctor([offering("g2-standard-4", "L4", 1)])
    assert not check.ok and "default credentials were not found" in check.detail
    assert "gcloud auth application-default login" in check.fix


def test_doctor_reports_a_missing_project(fake: FakeCompute) -> None:
    provider = GcpProvider(compute=compute_client(fake), default_credentials=lambda: (None, None))
    (check,) = provider.doctor([])
    assert not check.ok and "set clouds.gcp.project" in check.detail


def test_doctor_reports_refused_credentials_and_a_disabled_api() -> None:
    refused = {"error": {"code": 403, "message": "denied", "errors": [{"reason": "forbidden"}]}}
    disabled = {
        "error": {"code": 403, "message": "off", "errors": [{"reason": "accessNotConfigured"}]}
    }
    provider, _ = scripted(answer(403, refused))
    (check,) = provider.doctor([])
    assert not check.ok and "gcloud auth application-default login" in check.fix
    provider, _ = scripted(answer(403, disabled))
    (check,) = provider.doctor([])
    assert "gcloud services enable compute.googleapis.com" in check.fix


def test_the_project_comes_from_the_default_credentials_when_not_given() -> None:
    fake = FakeCompute(project="adc-project")
    provider = GcpProvider(
        CloudOptions(ssh_cidr=SSH_CIDR),
        compute=compute_client(fake),
        default_credentials=lambda: (None, "adc-project"),
        sleep=lambda s: None,
    )
    provider.run_instances(request())
    assert len(fake.instances) == 1


def test_cleanup_deletes_the_searchs_firewall_rule_once(
    provider: GcpProvider, fake: FakeCompute
) -> None:
    provider.run_instances(request())
    assert provider.cleanup_search(SEARCH) == [f"firewall rule {SEARCH}-ssh"]
    assert fake.firewalls == {}
    assert provider.cleanup_search(SEARCH) == []


# -- threads, imports ----------------------------------------------------------------------------


class _OneAtATime(FakeCompute):
    """Fails a test if two requests are ever inside the http object at once."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = 0
        self.overlaps = 0

    def request(self, *args: Any, **kwargs: Any) -> Any:
        self.inside += 1
        self.overlaps += self.inside > 1
        time.sleep(0.001)
        try:
            return super().request(*args, **kwargs)
        finally:
            self.inside -= 1


def test_trials_in_threads_never_share_the_http_object_at_once() -> None:
    fake = _OneAtATime()
    provider = provider_over(fake)
    errors: list[BaseException] = []

    def launch(trial: int) -> None:
        try:
            provider.wait_instances(provider.run_instances(request(trial=trial)), 600)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=launch, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and fake.overlaps == 0 and len(fake.instances) == 6


def test_importing_the_provider_imports_no_google_sdk() -> None:
    code = (
        "import sys, cherrypick.providers.gcp\n"
        "loaded = [m for m in sys.modules if m.startswith(('googleapiclient', 'google.auth'))]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
