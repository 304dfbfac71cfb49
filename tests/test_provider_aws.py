"""The AWS provider over moto: what it asks EC2 for, which image it boots, how each EC2 error is
classified, and what it leaves behind (the shared cases are in test_provider_contract.py)."""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.credentials import CredentialResolver
from botocore.exceptions import EndpointConnectionError, NoCredentialsError
from cherrypick.providers import _cloud
from cherrypick.providers._aws_errors import classify
from cherrypick.providers._aws_quota import quota_for
from cherrypick.providers._aws_setup import DLAMI_NAME
from cherrypick.providers.aws import POLL_S, AwsProvider
from cherrypick.providers.base import (
    TAG_CREATED_BY,
    TAG_NODE_RANK,
    TAG_SEARCH,
    TAG_TRIAL,
    Candidate,
    CloudOptions,
    InstanceState,
    LaunchRequest,
    Placement,
    ProvisionRecord,
    machine_tags,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fake_aws import ALT_REGION, REGION, SSH_CIDR, ZONES, AwsHarness, error_answer, harness
from fake_aws import offering as make_offering

from cherrypick.errors import (
    CapacityError,
    CredentialsError,
    ProvisioningError,
    QuotaError,
    Scope,
)

SEARCH = "cherrypick-aws0001"


def public_key() -> str:
    key = Ed25519PrivateKey.generate().public_key()
    raw = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return raw.decode() + " cherrypick"


KEY = public_key()


@pytest.fixture
def aws() -> Iterator[AwsHarness]:
    with harness() as made:
        yield made


def request(
    candidate: Candidate, placement: Placement | None = None, trial: int = 1, key: str = KEY
) -> LaunchRequest:
    where = placement or Placement(candidate.offering.region, candidate.offering.extra["zones"][0])
    tags = machine_tags(SEARCH, trial, "me:1")
    return LaunchRequest(candidate, where, f"{SEARCH}-t{trial}-a0", tags, 3600.0, key)


def described(aws: AwsHarness, record: ProvisionRecord) -> list[dict[str, Any]]:
    answer = aws.ec2(record.placement.region).describe_instances(InstanceIds=record.instance_ids)
    return [i for r in answer["Reservations"] for i in r["Instances"]]


# -- what a launch asks for -------------------------------------------------------------------


def test_a_launch_asks_for_the_offering_in_the_zones_subnet_tagged_and_ending_itself(
    aws: AwsHarness,
) -> None:
    record = aws.provider.run_instances(request(aws.pair))
    assert record.placement == Placement(REGION, ZONES[0])
    bodies = aws.launches
    assert len(bodies) == 2 and all(b["zones"] == ("us-east-1b", "use1-az1") for b in bodies)
    first = bodies[0]
    assert first["InstanceType"] == "g5.xlarge" and first["ImageId"] == aws.images[REGION]
    assert first["InstanceInitiatedShutdownBehavior"] == "terminate"
    script = base64.b64decode(first["UserData"]).decode()
    assert script == _cloud.self_destruct_script(3600.0) and "shutdown -h +60" in script
    assert first["KeyName"] == _cloud.resource_name(SEARCH, "key")
    assert not any(k.startswith("InstanceMarketOptions") for k in first)
    machines = sorted(described(aws, record), key=lambda m: m["AmiLaunchIndex"])
    ranks = []
    for machine in machines:
        tags = {t["Key"]: t["Value"] for t in machine["Tags"]}
        assert tags[TAG_SEARCH] == SEARCH and tags[TAG_TRIAL] == "1"
        assert tags["Name"] == f"{SEARCH}-t1-a0-{tags[TAG_NODE_RANK]}"
        ranks.append(tags[TAG_NODE_RANK])
        assert machine["Placement"]["AvailabilityZone"] == "us-east-1b"
        assert machine["ImageId"] == aws.images[REGION]
    assert sorted(ranks) == ["0", "1"]
    assert {s["ResourceType"] for s in _tag_specs(first).values()} == {"instance", "volume"}


def _tag_specs(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The query-serialised ``TagSpecification.N.*`` fields of a request body, by N."""
    specs: dict[str, dict[str, Any]] = {}
    for key, value in body.items():
        if key.startswith("TagSpecification.") and key.endswith("ResourceType"):
            specs[key.split(".")[1]] = {"ResourceType": value}
    return specs


def test_spot_is_asked_through_the_market_options(aws: AwsHarness) -> None:
    provider = aws.make_provider(CloudOptions(ssh_cidr=SSH_CIDR, spot=True))
    record = provider.run_instances(request(aws.candidate))
    body = aws.launches[-1]
    assert body["InstanceMarketOptions.MarketType"] == "spot"
    assert body["InstanceMarketOptions.SpotOptions.SpotInstanceType"] == "one-time"
    assert body["InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior"] == "terminate"
    assert described(aws, record)[0]["InstanceLifecycle"] == "spot"


def test_a_zone_name_is_found_as_well_as_a_zone_id(aws: AwsHarness) -> None:
    record = aws.provider.run_instances(request(aws.candidate, Placement(REGION, "us-east-1c")))
    assert described(aws, record)[0]["Placement"]["AvailabilityZone"] == "us-east-1c"


def test_a_zone_without_a_default_subnet_is_a_zone_error(aws: AwsHarness) -> None:
    with pytest.raises(ProvisioningError) as caught:
        aws.provider.run_instances(request(aws.candidate, Placement(REGION, "use1-az99")))
    assert caught.value.scope is Scope.ZONE and "create-default-subnet" in str(caught.value)
    assert aws.launches == []


def test_waiting_returns_rank_zero_first_with_both_addresses(aws: AwsHarness) -> None:
    provider = aws.make_provider(CloudOptions(ssh_cidr=SSH_CIDR, ssh_user="admin"))
    record = provider.run_instances(request(aws.pair))
    cluster = provider.wait_instances(record, timeout_s=60)
    assert [i.node_rank for i in cluster.instances] == [0, 1]
    for instance in cluster.instances:
        assert instance.internal_ip.startswith("172.31.") and instance.external_ip
        assert instance.ssh_user == "admin" and instance.ssh_port == 22
        assert instance.region == REGION and instance.extra["zone"] == "us-east-1b"
    assert aws.provider.ssh_user == "ubuntu"


def test_waiting_for_a_machine_that_ended_fails(aws: AwsHarness) -> None:
    record = aws.provider.run_instances(request(aws.candidate))
    aws.ec2().terminate_instances(InstanceIds=list(record.instance_ids))
    with pytest.raises(ProvisioningError, match="is terminated"):
        aws.provider.wait_instances(record, timeout_s=60)


def test_waiting_times_out_on_the_injected_clock(aws: AwsHarness) -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    provider = AwsProvider(
        CloudOptions(ssh_cidr=SSH_CIDR), session=aws.session, sleep=sleep, clock=lambda: now[0]
    )
    # An id EC2 does not list yet (it lists new machines a little late): still pending.
    record = ProvisionRecord("aws", Placement(REGION), "c", ("i-0123456789abcdef0",))
    with pytest.raises(ProvisioningError, match="not running after 30 s"):
        provider.wait_instances(record, timeout_s=30)
    assert now[0] == 30.0 and 30.0 % POLL_S == 0  # asked every POLL_S until the limit


# -- the image --------------------------------------------------------------------------------


def test_the_image_is_the_deep_learning_ami_of_the_ssm_parameter() -> None:
    with harness() as aws:
        name = DLAMI_NAME["x86_64"].rstrip("*")
        newer = aws.add_image(REGION, f"{name} 20270101", created="2027-01-01")
        aws.provider.run_instances(request(aws.candidate))
        assert aws.launches[-1]["ImageId"] == aws.images[REGION] != newer


def test_without_the_parameter_the_newest_amazon_image_of_that_name_is_used() -> None:
    with harness(seed_parameter=False) as aws:
        name = DLAMI_NAME["x86_64"].rstrip("*")
        newest = aws.add_image(REGION, f"{name} 20270101", created="2027-01-01")
        aws.add_image(REGION, f"{name} 20280101", owner="self", created="2028-01-01")
        aws.provider.run_instances(request(aws.candidate))
        assert aws.launches[-1]["ImageId"] == newest


@pytest.mark.parametrize("kind", ["ami", "parameter", "name"])
def test_the_image_option_overrides_the_default(aws: AwsHarness, kind: str) -> None:
    mine = aws.add_image(REGION, "my-training-image-2", owner="self")
    if kind == "parameter":
        aws.own.client("ssm", region_name=REGION).put_parameter(
            Name="/team/ami", Value=mine, Type="String"
        )
    setting = {"ami": mine, "parameter": "/team/ami", "name": "my-training-image-*"}[kind]
    provider = aws.make_provider(CloudOptions(image=setting, ssh_cidr=SSH_CIDR))
    provider.run_instances(request(aws.candidate))
    assert aws.launches[-1]["ImageId"] == mine


def test_no_image_found_blocks_the_region(aws: AwsHarness) -> None:
    provider = aws.make_provider(CloudOptions(image="no-such-image-*", ssh_cidr=SSH_CIDR))
    with pytest.raises(ProvisioningError, match="no image found") as caught:
        provider.run_instances(request(aws.candidate))
    assert caught.value.scope is Scope.REGION and aws.launches == []


# -- the search's security group and key pair ---------------------------------------------------


def _group(aws: AwsHarness, region: str = REGION) -> dict[str, Any]:
    name = _cloud.resource_name(SEARCH, "ssh")
    filters = [{"Name": "group-name", "Values": [name]}]
    groups = aws.ec2(region).describe_security_groups(Filters=filters)["SecurityGroups"]
    assert len(groups) == 1
    return dict(groups[0])


def test_the_security_group_lets_only_the_caller_reach_ssh(aws: AwsHarness) -> None:
    record = aws.provider.run_instances(request(aws.candidate))
    aws.provider.run_instances(request(aws.candidate, trial=2))  # the same group, reused
    group = _group(aws)
    default_vpc = aws.ec2().describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])
    assert group["VpcId"] == default_vpc["Vpcs"][0]["VpcId"]
    rules = group["IpPermissions"]
    from_outside = [r for r in rules if r["IpRanges"]]
    ports = [(r["IpProtocol"], r["FromPort"], r["ToPort"]) for r in from_outside]
    assert ports == [("tcp", 22, 22)]
    assert [ip["CidrIp"] for ip in from_outside[0]["IpRanges"]] == [SSH_CIDR]
    between = [r for r in rules if r["UserIdGroupPairs"]]
    assert between[0]["UserIdGroupPairs"][0]["GroupId"] == group["GroupId"]
    tags = {t["Key"]: t["Value"] for t in group["Tags"]}
    assert tags == {TAG_CREATED_BY: "cherrypick", TAG_SEARCH: SEARCH}
    assert described(aws, record)[0]["SecurityGroups"][0]["GroupId"] == group["GroupId"]


def test_without_ssh_cidr_the_callers_address_is_allowed(aws: AwsHarness) -> None:
    provider = aws.make_provider(CloudOptions(), fetch_ip=lambda url: "198.51.100.9\n")
    provider.run_instances(request(aws.candidate))
    ranges = [ip["CidrIp"] for r in _group(aws)["IpPermissions"] for ip in r["IpRanges"]]
    assert ranges == ["198.51.100.9/32"]


def test_the_key_pair_holds_the_searchs_key_and_replaces_a_stale_one(aws: AwsHarness) -> None:
    name = _cloud.resource_name(SEARCH, "key")
    aws.ec2().import_key_pair(KeyName=name, PublicKeyMaterial=public_key().encode())
    aws.provider.run_instances(request(aws.candidate))
    aws.provider.run_instances(request(aws.candidate, trial=2))
    pairs = aws.ec2().describe_key_pairs(KeyNames=[name], IncludePublicKey=True)["KeyPairs"]
    assert len(pairs) == 1 and pairs[0]["PublicKey"].split()[:2] == KEY.split()[:2]
    assert {t["Key"]: t["Value"] for t in pairs[0]["Tags"]}[TAG_SEARCH] == SEARCH


def test_cleanup_deletes_the_searchs_resources_in_every_region_and_no_others(
    aws: AwsHarness,
) -> None:
    first = aws.provider.run_instances(request(aws.candidate))
    second = aws.provider.run_instances(request(aws.alternatives[0], trial=2))
    tags = machine_tags("other", 1, "x")
    other = LaunchRequest(aws.candidate, first.placement, "other", tags, 60)
    kept = aws.provider.run_instances(other)
    aws.provider.terminate_instances(REGION, first.instance_ids)
    aws.provider.terminate_instances(ALT_REGION, second.instance_ids)
    deleted = aws.provider.cleanup_search(SEARCH)
    assert len(deleted) == 4 and {d.split()[-1] for d in deleted} == {REGION, ALT_REGION}
    assert aws.leftovers(SEARCH) == [] and aws.leftovers("other") != []
    assert aws.provider.cleanup_search(SEARCH) == []
    assert set(kept.instance_ids) <= aws.live_ids()


def test_cleanup_waits_for_a_group_still_held_by_a_gone_machine(aws: AwsHarness) -> None:
    held = [2]

    def in_use(**_: Any) -> Any:
        if held[0] == 0:
            return None
        held[0] -= 1
        return error_answer("DependencyViolation", 400, "resource sg-1 has a dependent object")

    aws.session.events.register("before-call.ec2.DeleteSecurityGroup", in_use)
    record = aws.provider.run_instances(request(aws.candidate))
    aws.provider.terminate_instances(REGION, record.instance_ids)
    deleted = aws.provider.cleanup_search(SEARCH)
    assert any(d.startswith("security group") for d in deleted) and held == [0]
    assert len(aws.slept) == 2 and aws.leftovers(SEARCH) == []


# -- errors -------------------------------------------------------------------------------------

QUOTA = "Running On-Demand G and VT instances"


@pytest.mark.parametrize(
    ("code", "kind", "scope"),
    [
        ("InsufficientInstanceCapacity", CapacityError, Scope.ZONE),
        ("Unsupported", CapacityError, Scope.ZONE),
        ("VcpuLimitExceeded", QuotaError, Scope.REGION),
        ("MaxSpotInstanceCountExceeded", QuotaError, Scope.REGION),
        ("InstanceLimitExceeded", QuotaError, Scope.REGION),
        ("AuthFailure", CredentialsError, Scope.CLOUD),
        ("UnauthorizedOperation", CredentialsError, Scope.CLOUD),
        ("InvalidParameterValue", ProvisioningError, None),
    ],
)
def test_each_ec2_error_is_classified_with_its_scope(
    aws: AwsHarness, code: str, kind: type[ProvisioningError], scope: Scope | None
) -> None:
    placement = Placement(REGION, ZONES[1])
    aws.fail(placement, code)
    with pytest.raises(ProvisioningError) as caught:
        aws.provider.run_instances(request(aws.candidate, placement))
    error = caught.value
    assert type(error) is kind and error.scope is scope and error.code == code
    assert aws.slept == [] and len(aws.launches) == 1  # asked once: not worth repeating
    if kind is CapacityError:
        assert (error.region, error.zone) == (REGION, ZONES[1])
    if kind is QuotaError:
        assert isinstance(error, QuotaError) and error.quota == QUOTA
    if kind is CredentialsError:
        assert str(error).endswith("run 'cherrypick doctor --provider aws'")


@pytest.mark.parametrize("code", ["RequestLimitExceeded", "InternalError", "Unavailable"])
def test_transient_errors_are_retried_with_growing_pauses(aws: AwsHarness, code: str) -> None:
    aws.fail(Placement(REGION, ZONES[0]), code, times=3)
    record = aws.provider.run_instances(request(aws.candidate))
    assert set(record.instance_ids) == aws.live_ids()
    assert len(aws.launches) == 4 and len(aws.slept) == 3
    assert aws.slept[0] <= 1.0 <= aws.slept[1] <= 2.0 <= aws.slept[2] <= 4.0


def test_a_transient_error_that_persists_gives_the_zone_up(aws: AwsHarness) -> None:
    aws.fail(Placement(REGION, ZONES[0]), "transient", times=_cloud.RETRY_ATTEMPTS)
    with pytest.raises(ProvisioningError) as caught:
        aws.provider.run_instances(request(aws.candidate))
    assert caught.value.scope is Scope.ZONE and caught.value.code == "RequestLimitExceeded"
    assert len(aws.launches) == _cloud.RETRY_ATTEMPTS and aws.live_ids() == set()


def test_failover_follows_the_zones_in_order_and_a_quota_skips_the_region(
    aws: AwsHarness,
) -> None:
    placements = [*aws.provider.placements(aws.candidate)]
    placements += aws.provider.placements(aws.alternatives[0])
    aws.fail(placements[0], "capacity")
    aws.fail(placements[1], "quota")
    blocked: set[str] = set()
    landed = None
    for placement in placements:
        if placement.region in blocked:
            continue
        try:
            landed = aws.provider.run_instances(request(aws.candidate, placement))
            break
        except CapacityError as error:
            if error.scope is Scope.REGION:
                blocked.add(placement.region)
    tried = [(b["region"], b["zones"][1]) for b in aws.launches]
    assert tried == [(REGION, "use1-az1"), (REGION, "use1-az2"), (ALT_REGION, "usw2-az1")]
    assert landed is not None and landed.placement == Placement(ALT_REGION, "usw2-az1")


def test_a_launch_failing_part_way_terminates_what_it_launched(aws: AwsHarness) -> None:
    aws.fail(Placement(REGION, ZONES[0]), "capacity", after=1)
    with pytest.raises(CapacityError):
        aws.provider.run_instances(request(aws.pair))
    assert len(aws.launches) == 2 and aws.live_ids() == set()


def test_botocore_errors_without_a_code_are_classified_too() -> None:
    missing = classify(NoCredentialsError(), region=REGION)
    assert isinstance(missing, CredentialsError) and "doctor --provider aws" in str(missing)
    unreachable = classify(EndpointConnectionError(endpoint_url="https://x"), region=REGION)
    assert unreachable is not None and unreachable.scope is Scope.RETRY
    assert classify(ValueError("a bug of ours"), region=REGION) is None


# -- terminate, query, list -------------------------------------------------------------------


def test_terminating_with_an_unknown_id_still_ends_the_others(aws: AwsHarness) -> None:
    record = aws.provider.run_instances(request(aws.candidate))
    unknown = "i-0123456789abcdef0"
    aws.provider.terminate_instances(REGION, [unknown, *record.instance_ids])
    assert aws.live_ids() == set()
    states = aws.provider.query_instances(REGION, [unknown, *record.instance_ids])
    assert set(states.values()) == {InstanceState.TERMINATED}


def test_listing_looks_in_every_region_and_skips_terminated_machines(aws: AwsHarness) -> None:
    east = aws.provider.run_instances(request(aws.candidate, trial=1))
    west = aws.provider.run_instances(request(aws.alternatives[0], trial=2))
    gone = aws.provider.run_instances(request(aws.candidate, trial=3))
    aws.provider.terminate_instances(REGION, gone.instance_ids)
    found = aws.provider.list_launched({TAG_SEARCH: SEARCH})
    assert {i.instance_id for i in found} == set(east.instance_ids + west.instance_ids)
    assert {i.region for i in found} == {REGION, ALT_REGION}


def test_the_regions_default_to_the_catalogs(aws: AwsHarness) -> None:
    tags = [{"Key": TAG_SEARCH, "Value": SEARCH}]
    aws.ec2("eu-west-1").run_instances(
        ImageId="ami-12345678", InstanceType="g5.xlarge", MinCount=1, MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
    )  # fmt: skip
    provider = AwsProvider(CloudOptions(ssh_cidr=SSH_CIDR), session=aws.session)
    assert [i.region for i in provider.list_launched({TAG_SEARCH: SEARCH})] == ["eu-west-1"]


# -- quotas and doctor --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instance_type", "spot", "code"),
    [
        ("g5.xlarge", False, "L-DB2E81BA"),
        ("gr6.4xlarge", False, "L-DB2E81BA"),
        ("g5g.xlarge", True, "L-3819A6DF"),
        ("p5en.48xlarge", False, "L-417A185B"),
        ("p4d.24xlarge", True, "L-7212CCBC"),
        ("m5.large", False, "L-1216C47A"),
        ("dl1.24xlarge", False, None),
        ("inf2.xlarge", False, None),
    ],
)
def test_each_family_counts_against_its_vcpu_quota(
    instance_type: str, spot: bool, code: str | None
) -> None:
    quota = quota_for(instance_type, spot)
    assert (quota.code if quota else None) == code


def test_a_quota_too_small_is_said_and_asked_once(aws: AwsHarness) -> None:
    asked = []
    # First in line: the harness's own handler answers, and the first answer ends the line.
    aws.session.events.register_first(
        "before-call.service-quotas.GetServiceQuota", lambda **kw: asked.append(1)
    )
    aws.quotas[(REGION, "L-DB2E81BA")] = 0.0
    placement = Placement(REGION, ZONES[0])
    why = aws.provider.quota_shortfall(aws.pair, placement)
    assert why == (
        f"quota '{QUOTA}' in {REGION} is 0 vCPUs, needs 8:"
        " request an increase in Service Quotas (L-DB2E81BA)"
    )
    assert aws.provider.quota_shortfall(aws.candidate, Placement(REGION, ZONES[1])) is not None
    assert len(asked) == 1
    assert aws.provider.quota_shortfall(aws.alternatives[0], Placement(ALT_REGION)) is None


def test_an_unreadable_quota_is_no_shortfall(aws: AwsHarness) -> None:
    del aws.quotas[(REGION, "L-DB2E81BA")]
    assert aws.provider.quota_shortfall(aws.candidate, Placement(REGION)) is None


def test_spot_reads_the_spot_quota(aws: AwsHarness) -> None:
    aws.quotas[(REGION, "L-3819A6DF")] = 2.0
    provider = aws.make_provider(CloudOptions(ssh_cidr=SSH_CIDR, spot=True))
    why = provider.quota_shortfall(aws.candidate, Placement(REGION))
    assert why is not None and "All G and VT Spot Instance Requests" in why


def test_doctor_checks_the_credentials_and_each_regions_quota(aws: AwsHarness) -> None:
    big = make_offering(instance_type="p4d.24xlarge", vcpus=96, gpu="A100", gpus_per_node=8)
    aws.quotas[(REGION, "L-417A185B")] = 0.0
    checks = aws.provider.doctor([aws.candidate.offering, big, make_offering(ALT_REGION)])
    by_name = {c.name: c for c in checks}
    assert by_name["credentials"].ok and "123456789012" in by_name["credentials"].detail
    assert set(by_name) == {
        "credentials",
        f"quota L-DB2E81BA in {REGION}",
        f"quota L-417A185B in {REGION}",
        f"quota L-DB2E81BA in {ALT_REGION}",
    }
    short = by_name[f"quota L-417A185B in {REGION}"]
    assert not short.ok and "needs 96" in short.detail
    assert "--quota-code L-417A185B --desired-value 96" in short.fix
    assert by_name[f"quota L-DB2E81BA in {REGION}"].ok


def test_doctor_reports_refused_credentials_without_raising(aws: AwsHarness) -> None:
    aws.sts_error = "InvalidClientTokenId"
    checks = aws.provider.doctor([aws.candidate.offering])
    assert [(c.name, c.ok) for c in checks] == [("credentials", False)]
    assert "InvalidClientTokenId" in checks[0].detail and "aws configure" in checks[0].fix
    assert "cherrypick doctor" not in checks[0].detail  # no advice to run what is running


def test_no_credentials_at_all_is_a_credentials_error(aws: AwsHarness) -> None:
    bare = botocore.session.Session()
    bare.register_component("credential_provider", CredentialResolver(providers=[]))
    provider = AwsProvider(
        CloudOptions(ssh_cidr=SSH_CIDR),
        session=boto3.session.Session(botocore_session=bare, region_name=REGION),
    )
    checks = provider.doctor([aws.candidate.offering])
    assert [(c.name, c.ok) for c in checks] == [("credentials", False)]
    with pytest.raises(CredentialsError, match="no usable AWS credentials"):
        provider.run_instances(request(aws.candidate))


def test_importing_the_provider_does_not_import_boto3() -> None:
    code = "import sys, cherrypick.providers.aws; print('boto3' in sys.modules)"
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert shown.stdout.strip() == "False", shown.stderr
