"""The Azure provider over the real SDK clients and a scripted ARM transport
(``tests/fake_azure.py``): request bodies, long-running operations, error codes, retries,
rollback, listing by tag, quotas and doctor."""

from __future__ import annotations

import base64
import subprocess
import sys
from typing import Any

import pytest
from azure.core.exceptions import ServiceRequestError
from cherrypick.providers._azure_errors import classify
from cherrypick.providers._cloud import RETRY_ATTEMPTS, self_destruct_script
from cherrypick.providers.azure import AzureProvider
from cherrypick.providers.base import (
    TAG_NODE_RANK,
    TAG_SEARCH,
    TAG_TRIAL,
    Candidate,
    CloudOptions,
    InstanceState,
    LaunchRequest,
    Placement,
    machine_tags,
    provider_registry,
)
from fake_azure import (
    FAMILY,
    INVALID_TOKEN,
    SIZE,
    SSH_CIDR,
    SUBSCRIPTION,
    THROTTLED,
    ArmError,
    FakeAzure,
    FakeClock,
    FakeCredential,
    allocation_failed,
    harness,
    offering_in,
    provider,
    quota_exceeded,
    sku,
    sku_not_available,
)

from cherrypick.errors import (
    CapacityError,
    CredentialsError,
    InputError,
    ProvisioningError,
    QuotaError,
    Scope,
)

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
EAST = Placement("eastus")
ADVICE = "run 'cherrypick doctor --provider azure'"


def request(
    nodes: int = 1,
    placement: Placement = EAST,
    search: str = "cherrypick-s1",
    trial: int = 1,
    key: str | None = KEY,
) -> LaunchRequest:
    candidate = Candidate(offering_in(placement.region), nodes)
    tags = machine_tags(search, trial, "me@host:1")
    name = f"{search}-t{trial}-a0"
    return LaunchRequest(candidate, placement, name, tags, 3600.0, key)


def only(bodies: list[Any]) -> Any:
    assert len(bodies) == 1, bodies
    return bodies[0]


@pytest.fixture
def fake() -> FakeAzure:
    return FakeAzure()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def azure(fake: FakeAzure, clock: FakeClock) -> AzureProvider:
    return provider(fake, clock)


# -- what a launch sends --------------------------------------------------------------------


def test_a_launch_makes_one_group_holding_network_and_machines(
    fake: FakeAzure, azure: AzureProvider
) -> None:
    launch = request(nodes=2)
    record = azure.run_instances(launch)
    group = "cherrypick-s1-t1-a0-rg"
    assert record.instance_ids == (
        f"{group}/cherrypick-s1-t1-a0-0",
        f"{group}/cherrypick-s1-t1-a0-1",
    )
    assert only(fake.bodies("PUT", f"/resourcegroups/{group}")) == {
        "location": "eastus",
        "tags": dict(launch.tags),
    }
    nsg = only(fake.bodies("PUT", "/networkSecurityGroups/cherrypick-ssh"))
    assert nsg["tags"] == dict(launch.tags)
    assert nsg["properties"]["securityRules"] == [
        {
            "name": "ssh",
            "properties": {
                "protocol": "Tcp",
                "sourceAddressPrefix": SSH_CIDR,
                "sourcePortRange": "*",
                "destinationAddressPrefix": "*",
                "destinationPortRange": "22",
                "access": "Allow",
                "direction": "Inbound",
                "priority": 1000,
            },
        }
    ]
    subnet = only(fake.bodies("PUT", "/virtualNetworks/cherrypick-vnet"))["properties"]["subnets"]
    assert subnet[0]["properties"]["networkSecurityGroup"]["id"].endswith(
        f"/resourceGroups/{group}/providers/Microsoft.Network/networkSecurityGroups/cherrypick-ssh"
    )
    address = only(fake.bodies("PUT", "/publicIPAddresses/cherrypick-s1-t1-a0-1-ip"))
    assert address["sku"] == {"name": "Standard"} and "zones" not in address
    assert address["properties"]["publicIPAllocationMethod"] == "Static"
    config = only(fake.bodies("PUT", "/networkInterfaces/cherrypick-s1-t1-a0-1-nic"))
    refs = config["properties"]["ipConfigurations"][0]["properties"]
    assert refs["subnet"]["id"].endswith("/virtualNetworks/cherrypick-vnet/subnets/default")
    assert refs["publicIPAddress"]["id"].endswith("/publicIPAddresses/cherrypick-s1-t1-a0-1-ip")


def test_the_vm_body_carries_size_image_key_boot_script_and_rank(
    fake: FakeAzure, azure: AzureProvider
) -> None:
    launch = request(nodes=2)
    azure.run_instances(launch)
    vm = only(fake.bodies("PUT", "/virtualMachines/cherrypick-s1-t1-a0-1"))
    props = vm["properties"]
    assert vm["location"] == "eastus" and "zones" not in vm
    assert vm["tags"] == dict(launch.tags) | {TAG_NODE_RANK: "1"}
    assert props["hardwareProfile"] == {"vmSize": "Standard_NC4as_T4_v3"}
    assert props["storageProfile"]["imageReference"] == {
        "publisher": "microsoft-dsvm",
        "offer": "ubuntu-hpc",
        "sku": "2204",
        "version": "latest",
    }
    assert props["storageProfile"]["osDisk"]["deleteOption"] == "Delete"
    os_profile = props["osProfile"]
    assert os_profile["adminUsername"] == "cherrypick"
    assert os_profile["computerName"] == "cherrypick-s1-t1-a0-1"
    assert os_profile["linuxConfiguration"] == {
        "disablePasswordAuthentication": True,
        "ssh": {"publicKeys": [{"path": "/home/cherrypick/.ssh/authorized_keys", "keyData": KEY}]},
    }
    script = base64.b64decode(os_profile["customData"]).decode()
    assert script == self_destruct_script(3600.0)
    nic = props["networkProfile"]["networkInterfaces"][0]
    assert nic["id"].endswith("/networkInterfaces/cherrypick-s1-t1-a0-1-nic")
    assert "priority" not in props and "evictionPolicy" not in props
    assert (
        only(fake.bodies("PUT", "/virtualMachines/cherrypick-s1-t1-a0-0"))["tags"][TAG_NODE_RANK]
        == "0"
    )


def test_spot_zone_user_and_marketplace_image_options(fake: FakeAzure, clock: FakeClock) -> None:
    urn = "Canonical:0001-com-ubuntu-server-jammy:22_04-lts-gen2:latest"
    azure = provider(fake, clock, spot=True, ssh_user="azureuser", image=urn)
    azure.run_instances(request(placement=Placement("eastus", "2")))
    vm = only(fake.bodies("PUT", "/virtualMachines/cherrypick-s1-t1-a0-0"))
    props = vm["properties"]
    assert vm["zones"] == ["2"]
    assert (props["priority"], props["evictionPolicy"]) == ("Spot", "Delete")
    assert props["storageProfile"]["imageReference"] == {
        "publisher": "Canonical",
        "offer": "0001-com-ubuntu-server-jammy",
        "sku": "22_04-lts-gen2",
        "version": "latest",
    }
    key = props["osProfile"]["linuxConfiguration"]["ssh"]["publicKeys"][0]
    assert key["path"] == "/home/azureuser/.ssh/authorized_keys"
    assert only(fake.bodies("PUT", "/publicIPAddresses/cherrypick-s1-t1-a0-0-ip"))["zones"] == ["2"]


def test_an_image_resource_id_is_used_as_an_id(fake: FakeAzure, clock: FakeClock) -> None:
    image = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/img/providers/Microsoft.Compute/images/x"
    provider(fake, clock, image=image).run_instances(request())
    vm = only(fake.bodies("PUT", "/virtualMachines/cherrypick-s1-t1-a0-0"))
    assert vm["properties"]["storageProfile"]["imageReference"] == {"id": image}


@pytest.mark.parametrize("image", ["ubuntu-hpc", "a:b:c", "a::c:d"])
def test_a_malformed_image_is_refused_before_anything_is_made(
    fake: FakeAzure, clock: FakeClock, image: str
) -> None:
    with pytest.raises(InputError, match="clouds.azure.image"):
        provider(fake, clock, image=image).run_instances(request())
    assert fake.requests == []


def test_a_launch_without_ssh_key_is_refused(fake: FakeAzure, azure: AzureProvider) -> None:
    with pytest.raises(ProvisioningError, match="SSH public key"):
        azure.run_instances(request(key=None))
    assert fake.requests == []


def test_the_subscription_comes_from_the_environment_or_is_asked_for(
    fake: FakeAzure, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    def bare() -> AzureProvider:
        options = CloudOptions(ssh_cidr=SSH_CIDR)
        credential = FakeCredential()
        return AzureProvider(options, credential=credential, transport=fake, sleep=clock.sleep)

    monkeypatch.delenv("AZURE_SUBSCRIPTION_ID", raising=False)
    with pytest.raises(CredentialsError) as missing:
        bare().run_instances(request())
    assert str(missing.value).endswith(ADVICE) and "AZURE_SUBSCRIPTION_ID" in str(missing.value)
    assert fake.requests == []
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", SUBSCRIPTION)
    assert bare().run_instances(request()).instance_ids
    from_options = AzureProvider(
        CloudOptions(ssh_cidr=SSH_CIDR, subscription_id="other-subscription"),
        credential=FakeCredential(),
        transport=fake,
        sleep=clock.sleep,
    )
    with pytest.raises(CredentialsError, match="SubscriptionNotFound|other-subscription"):
        from_options.run_instances(request(search="cherrypick-s2"))


def test_the_provider_is_built_by_name_and_imports_no_sdk_until_used() -> None:
    made = provider_registry.create("azure", CloudOptions(subscription_id="x"))
    assert isinstance(made, AzureProvider) and made.needs_ssh_key
    code = (
        "import sys, cherrypick.providers.azure as a; a.AzureProvider();"
        " loaded = [m for m in sys.modules if m.startswith('azure')]; print(loaded);"
        " sys.exit(1 if loaded else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# -- long-running operations ----------------------------------------------------------------


def test_a_vm_create_is_polled_until_its_operation_succeeds(clock: FakeClock) -> None:
    fake = FakeAzure(vm_polls=3)
    provider(fake, clock).run_instances(request())
    create = only(fake.calls("PUT", "/virtualMachines/"))
    after = fake.requests[fake.requests.index(create) + 1 :][:5]
    operation = after[0].path
    assert operation.startswith("/fake/operations/")
    assert [r.path for r in after] == [operation] * 4 + [create.path]  # 3 in progress, 1 done
    assert after[4].method == "GET"  # then the VM itself, as created
    assert fake.vms()["cherrypick-s1-t1-a0-rg/cherrypick-s1-t1-a0-0"]["power"] == "running"
    assert fake.slept and set(fake.slept) == {0}  # the SDK's polling pauses: interval 0
    assert clock.slept == []


def test_a_resource_group_deletion_is_awaited_through_its_location_when_rolling_back(
    clock: FakeClock,
) -> None:
    fake = FakeAzure(delete_lag=3)
    fake.fail_vm_create("eastus", None, sku_not_available("eastus"))
    with pytest.raises(CapacityError):
        provider(fake, clock).run_instances(request())
    delete = only(fake.calls("DELETE", "/resourcegroups/"))
    after = fake.requests[fake.requests.index(delete) + 1 :]
    assert len([r for r in after if r.path.startswith("/fake/operations/")]) >= 3
    assert fake.groups == {}


# -- errors -------------------------------------------------------------------------------


CAPACITY_CASES = [
    (sku_not_available("eastus"), None, Scope.REGION),
    (sku_not_available("eastus"), "1", Scope.ZONE),
    (allocation_failed(), None, Scope.REGION),
    (allocation_failed(), "3", Scope.ZONE),
    (ArmError(200, "ZonalAllocationFailed", "no capacity in zone", True), "2", Scope.ZONE),
    (ArmError(409, "OverconstrainedAllocationRequest", "too many constraints"), None, Scope.REGION),
    (ArmError(409, "OverconstrainedZonalAllocationRequest", "zonal"), "1", Scope.ZONE),
]


@pytest.mark.parametrize(("error", "zone", "scope"), CAPACITY_CASES)
def test_capacity_codes_block_the_zone_or_the_region_and_leave_nothing(
    fake: FakeAzure, azure: AzureProvider, error: ArmError, zone: str | None, scope: Scope
) -> None:
    fake.fail_vm_create("eastus", zone, error)
    with pytest.raises(CapacityError) as raised:
        azure.run_instances(request(placement=Placement("eastus", zone)))
    assert type(raised.value) is CapacityError
    assert (raised.value.scope, raised.value.code) == (scope, error.code)
    assert (raised.value.region, raised.value.zone) == ("eastus", zone)
    assert fake.live_ids() == set() and fake.groups == {}


def test_a_failed_deployment_is_classified_by_the_cause_in_its_details(
    fake: FakeAzure, azure: AzureProvider
) -> None:
    nested = ArmError(
        409,
        "DeploymentFailed",
        "At least one resource failed.",
        details=(("SkuNotAvailable", "x"),),
    )
    fake.fail_vm_create("eastus", None, nested)
    with pytest.raises(CapacityError) as raised:
        azure.run_instances(request())
    assert raised.value.code == "SkuNotAvailable" and raised.value.scope is Scope.REGION


QUOTA_CASES = [
    (quota_exceeded("eastus"), "QuotaExceeded", FAMILY),
    (
        ArmError(
            409,
            "OperationNotAllowed",
            "Operation could not be completed as it results in exceeding approved Total Regional"
            " Cores quota. Additional details - Location: eastus, Current Limit: 4",
        ),
        "OperationNotAllowed",
        "Total Regional Cores",
    ),
    (
        ArmError(409, "OperationNotAllowed", "exceeding approved LowPriorityCores quota."),
        "OperationNotAllowed",
        "LowPriorityCores",
    ),
]


@pytest.mark.parametrize(("error", "code", "quota"), QUOTA_CASES)
def test_quota_codes_block_the_region_and_name_the_quota(
    fake: FakeAzure, azure: AzureProvider, error: ArmError, code: str, quota: str
) -> None:
    fake.fail_vm_create("eastus", None, error)
    with pytest.raises(QuotaError) as raised:
        azure.run_instances(request())
    assert (raised.value.scope, raised.value.code, raised.value.quota) == (
        Scope.REGION,
        code,
        quota,
    )
    assert fake.groups == {}


def test_operation_not_allowed_without_quota_is_not_a_quota_error(
    fake: FakeAzure, azure: AzureProvider
) -> None:
    fake.fail_vm_create("eastus", None, ArmError(409, "OperationNotAllowed", "VM is being resized"))
    with pytest.raises(ProvisioningError) as raised:
        azure.run_instances(request())
    assert type(raised.value) is ProvisioningError
    assert (raised.value.scope, raised.value.code) == (None, "OperationNotAllowed")


@pytest.mark.parametrize(
    "error",
    [INVALID_TOKEN, ArmError(403, "AuthorizationFailed", "The client does not have authorization")],
)
def test_refused_identities_stop_the_cloud_with_the_doctor_advice(
    fake: FakeAzure, azure: AzureProvider, error: ArmError
) -> None:
    fake.fail_vm_create("eastus", None, error)
    with pytest.raises(CredentialsError) as raised:
        azure.run_instances(request())
    assert raised.value.scope is Scope.CLOUD and raised.value.code == error.code
    assert str(raised.value).endswith(ADVICE)
    assert fake.groups == {}


def test_a_credential_that_cannot_get_a_token_is_a_credentials_error(
    fake: FakeAzure, clock: FakeClock
) -> None:
    azure = provider(fake, clock, credential=FakeCredential(refuse=True))
    with pytest.raises(CredentialsError) as raised:
        azure.run_instances(request())
    assert raised.value.code == "ClientAuthenticationError"
    assert str(raised.value).endswith(ADVICE)
    assert fake.requests == []  # refused before any request left


def test_an_unknown_code_is_a_plain_provisioning_error(
    fake: FakeAzure, azure: AzureProvider
) -> None:
    fake.fail_vm_create("eastus", None, ArmError(400, "InvalidParameter", "bad osProfile"))
    with pytest.raises(ProvisioningError, match="bad osProfile") as raised:
        azure.run_instances(request())
    assert type(raised.value) is ProvisioningError and raised.value.scope is None
    assert (raised.value.code, raised.value.region) == ("InvalidParameter", "eastus")


def test_classify_leaves_foreign_errors_alone_and_retries_connection_failures() -> None:
    assert classify(ValueError("a bug"), "eastus") is None
    error = classify(ServiceRequestError("connection reset"), "eastus")
    assert error is not None and error.scope is Scope.RETRY


# -- retries --------------------------------------------------------------------------------


def test_throttling_is_retried_with_backoff_by_the_provider_alone(
    fake: FakeAzure, clock: FakeClock, azure: AzureProvider
) -> None:
    fake.fail_vm_create("eastus", None, THROTTLED, times=2)
    assert azure.run_instances(request()).instance_ids
    assert len(fake.calls("PUT", "/virtualMachines/")) == 3  # the SDK did not retry on its own
    assert len(clock.slept) == 2 and 0 < clock.slept[0] < clock.slept[1]


@pytest.mark.parametrize(
    ("method", "path", "error"),
    [
        ("PUT", "/resourcegroups/", ArmError(500, "InternalServerError", "try later")),
        ("PUT", "/virtualNetworks/", ArmError(503, "ServiceUnavailable", "try later")),
        ("GET", "/fake/operations/", ArmError(429, "TooManyRequests", "slow down")),
    ],
)
def test_transient_answers_anywhere_in_a_launch_are_retried(
    fake: FakeAzure, clock: FakeClock, azure: AzureProvider, method: str, path: str, error: ArmError
) -> None:
    fake.fail_request(method, path, error)
    assert azure.run_instances(request()).instance_ids
    assert len(clock.slept) == 1


def test_an_operation_failing_with_a_transient_code_is_retried_whole(
    fake: FakeAzure, clock: FakeClock, azure: AzureProvider
) -> None:
    internal = ArmError(200, "InternalExecutionError", "An internal error occurred.", True)
    fake.fail_vm_create("eastus", None, internal)
    azure.run_instances(request())
    assert len(fake.calls("PUT", "/virtualMachines/")) == 2 and len(clock.slept) == 1
    assert fake.vms()["cherrypick-s1-t1-a0-rg/cherrypick-s1-t1-a0-0"]["power"] == "running"


def test_throttling_that_never_ends_gives_up_on_the_placement(
    fake: FakeAzure, clock: FakeClock, azure: AzureProvider
) -> None:
    fake.fail_vm_create("eastus", None, THROTTLED, times=100)
    with pytest.raises(ProvisioningError) as raised:
        azure.run_instances(request())
    assert raised.value.scope is Scope.ZONE and raised.value.code == "TooManyRequests"
    assert len(fake.calls("PUT", "/virtualMachines/")) == RETRY_ATTEMPTS
    assert fake.groups == {}


# -- partial launches, terminating ----------------------------------------------------------


def test_a_partial_launch_is_rolled_back_before_raising(
    fake: FakeAzure, azure: AzureProvider
) -> None:
    fake.fail_vm_create("eastus", None, sku_not_available("eastus"), times=1)
    with pytest.raises(CapacityError):
        azure.run_instances(request(nodes=2))
    assert len(fake.calls("PUT", "/virtualMachines/")) == 2  # one made, one refused
    assert len(fake.calls("PUT", "/networkInterfaces/")) == 2
    assert only(fake.calls("DELETE", "/resourcegroups/")).path.endswith("cherrypick-s1-t1-a0-rg")
    assert fake.live_ids() == set() and fake.groups == {}


def test_terminating_deletes_the_group_and_is_idempotent(
    fake: FakeAzure, azure: AzureProvider
) -> None:
    ids = azure.run_instances(request(nodes=2)).instance_ids
    azure.terminate_instances("eastus", ids)
    assert len(fake.calls("DELETE", "/resourcegroups/")) == 1  # one group for both machines
    assert set(azure.query_instances("eastus", ids).values()) == {InstanceState.TERMINATED}
    azure.terminate_instances("eastus", ids)
    azure.terminate_instances("eastus", ["not-one-of-ours", "gone-rg/vm"])
    assert fake.live_ids() == set()


def test_a_deleting_group_reads_stopping_until_it_is_gone(clock: FakeClock) -> None:
    fake = FakeAzure(delete_lag=2)
    azure = provider(fake, clock)
    ids = azure.run_instances(request()).instance_ids
    azure.terminate_instances("eastus", ids)
    assert azure.query_instances("eastus", ids) == {ids[0]: InstanceState.STOPPING}
    assert azure.query_instances("eastus", ids) == {ids[0]: InstanceState.STOPPING}
    assert azure.query_instances("eastus", ids) == {ids[0]: InstanceState.TERMINATED}


@pytest.mark.parametrize(
    ("power", "state"),
    [
        ("running", InstanceState.RUNNING),
        ("starting", InstanceState.PENDING),
        ("stopping", InstanceState.STOPPING),
        ("stopped", InstanceState.STOPPING),
        ("deallocating", InstanceState.STOPPING),
        ("deallocated", InstanceState.STOPPING),
        (None, InstanceState.PENDING),
    ],
)
def test_power_states_map_to_instance_states(
    fake: FakeAzure, azure: AzureProvider, power: str | None, state: InstanceState
) -> None:
    (machine,) = azure.run_instances(request()).instance_ids
    fake.set_power(machine, power)
    assert azure.query_instances("eastus", [machine, "never/made"]) == {
        machine: state,
        "never/made": InstanceState.TERMINATED,
    }


# -- waiting --------------------------------------------------------------------------------


def test_waiting_returns_the_machines_rank_first_with_their_addresses(
    fake: FakeAzure, azure: AzureProvider
) -> None:
    record = azure.run_instances(request(nodes=2))
    cluster = azure.wait_instances(record, 600)
    assert [m.instance_id for m in cluster.instances] == list(record.instance_ids)
    assert [m.node_rank for m in cluster.instances] == [0, 1]
    head = cluster.head
    group = fake.groups["cherrypick-s1-t1-a0-rg"].resources
    address = group["microsoft.network/publicipaddresses/cherrypick-s1-t1-a0-0-ip"]
    nic = group["microsoft.network/networkinterfaces/cherrypick-s1-t1-a0-0-nic"]
    assert head.external_ip == address["properties"]["ipAddress"]
    private = nic["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"]
    assert head.internal_ip == private and head.internal_ip.startswith("10.0.0.")
    assert (head.ssh_port, head.ssh_user, head.region) == (22, "cherrypick", "eastus")
    assert head.tags[TAG_SEARCH] == "cherrypick-s1" and head.tags[TAG_NODE_RANK] == "0"


def test_waiting_times_out_on_a_machine_that_does_not_run(
    fake: FakeAzure, clock: FakeClock, azure: AzureProvider
) -> None:
    record = azure.run_instances(request())
    fake.set_power(record.instance_ids[0], "starting")
    with pytest.raises(ProvisioningError, match="not running") as raised:
        azure.wait_instances(record, 60)
    assert raised.value.region == "eastus"
    assert clock.slept and sum(clock.slept) >= 60


def test_waiting_on_a_machine_that_ended_raises_at_once(
    fake: FakeAzure, clock: FakeClock, azure: AzureProvider
) -> None:
    record = azure.run_instances(request())
    azure.terminate_instances("eastus", record.instance_ids)
    with pytest.raises(ProvisioningError, match="ended"):
        azure.wait_instances(record, 600)
    assert clock.slept == []


# -- listing and cleaning up ----------------------------------------------------------------


def test_listing_finds_the_machines_carrying_every_tag_in_our_groups(
    fake: FakeAzure, clock: FakeClock, azure: AzureProvider
) -> None:
    first = azure.run_instances(request(nodes=2, search="cherrypick-s1"))
    other = azure.run_instances(request(search="cherrypick-s2", trial=7))
    untagged = LaunchRequest(request().candidate, EAST, "foreign", {}, 60, KEY)
    azure.run_instances(untagged)  # not tagged as ours: never listed
    listed = azure.list_launched({TAG_SEARCH: "cherrypick-s1"})
    assert [m.instance_id for m in listed] == list(first.instance_ids)
    assert [m.node_rank for m in listed] == [0, 1] and listed[0].region == "eastus"
    by_trial = azure.list_launched({TAG_SEARCH: "cherrypick-s2", TAG_TRIAL: "7"})
    assert [m.instance_id for m in by_trial] == list(other.instance_ids)
    assert len(azure.list_launched({})) == 3
    elsewhere = AzureProvider(
        CloudOptions(),
        credential=FakeCredential(),
        subscription_id=SUBSCRIPTION,
        transport=fake,
        regions=["westus2"],
    )
    assert elsewhere.list_launched({}) == []


def test_cleanup_deletes_the_search_groups_left_and_is_idempotent(
    fake: FakeAzure, azure: AzureProvider
) -> None:
    azure.run_instances(request(search="cherrypick-s1"))
    azure.run_instances(request(search="cherrypick-s1", trial=2))
    kept = azure.run_instances(request(search="cherrypick-s2"))
    assert azure.cleanup_search("cherrypick-s1") == [
        "resource group cherrypick-s1-t1-a0-rg",
        "resource group cherrypick-s1-t2-a0-rg",
    ]
    assert fake.groups_tagged(TAG_SEARCH, "cherrypick-s1") == []
    assert azure.cleanup_search("cherrypick-s1") == []
    assert fake.live_ids() == set(kept.instance_ids)


# -- quota and doctor -------------------------------------------------------------------------


def test_a_family_quota_too_small_is_a_shortfall_asked_once_per_region(
    fake: FakeAzure, azure: AzureProvider
) -> None:
    fake.set_quota("eastus", FAMILY, limit=24, current=20)
    one, two = Candidate(offering_in("eastus"), 1), Candidate(offering_in("eastus"), 2)
    assert azure.quota_shortfall(one, EAST) is None
    reason = azure.quota_shortfall(two, EAST)
    assert reason is not None
    assert "'Standard NCASv3_T4 Family vCPUs' in eastus is 24 vCPUs (20 used), needs 8" in reason
    assert "Quotas" in reason
    assert len(fake.calls("GET", "/locations/eastus/usages")) == 1
    assert len(fake.calls("GET", "/skus")) == 1


def test_the_regional_total_counts_too(fake: FakeAzure, azure: AzureProvider) -> None:
    fake.set_quota("westus2", "cores", limit=2)
    reason = azure.quota_shortfall(Candidate(offering_in("westus2")), Placement("westus2"))
    assert reason is not None and "'Total Regional vCPUs' in westus2 is 2 vCPUs" in reason


def test_spot_machines_draw_on_the_low_priority_quota(fake: FakeAzure, clock: FakeClock) -> None:
    fake.set_quota("eastus", FAMILY, limit=0)
    fake.set_quota("eastus", "lowPriorityCores", limit=3)
    spot = provider(fake, clock, spot=True)
    reason = spot.quota_shortfall(Candidate(offering_in("eastus")), EAST)
    assert reason is not None and "Low-priority" in reason and "needs 4" in reason


def test_an_unreadable_quota_is_no_shortfall(fake: FakeAzure, azure: AzureProvider) -> None:
    fake.fail_request("GET", "/usages", ArmError(403, "AuthorizationFailed", "no read"))
    assert azure.quota_shortfall(Candidate(offering_in("eastus")), EAST) is None


def test_doctor_checks_credentials_subscription_and_each_quota(
    fake: FakeAzure, azure: AzureProvider
) -> None:
    fake.set_quota("westus2", FAMILY, limit=0)
    fake.skus = [sku(SIZE, FAMILY, "eastus")]  # not offered in westus2
    checks = azure.doctor([offering_in("eastus"), offering_in("westus2")])
    by_name = {c.name: c for c in checks}
    assert by_name["credentials"].ok and by_name["subscription"].ok
    assert by_name["quota eastus 'Standard NCASv3_T4 Family vCPUs'"].ok
    assert by_name["quota eastus 'Total Regional vCPUs'"].ok
    assert "0 of 100 vCPUs used" in by_name["quota westus2 'Total Regional vCPUs'"].detail
    missing = by_name["size westus2 Standard_NC4as_T4_v3"]
    assert not missing.ok and missing.fix
    assert all(c.provider == "azure" for c in checks)


def test_doctor_reports_a_family_quota_of_zero_with_a_fix(
    fake: FakeAzure, azure: AzureProvider
) -> None:
    fake.set_quota("eastus", FAMILY, limit=0)
    checks = {c.name: c for c in azure.doctor([offering_in("eastus")])}
    family = checks["quota eastus 'Standard NCASv3_T4 Family vCPUs'"]
    assert not family.ok and "needs 4" in family.detail and "Quotas" in family.fix


def test_doctor_reports_a_missing_login_without_raising(fake: FakeAzure, clock: FakeClock) -> None:
    refused = FakeCredential(refuse=True)
    checks = provider(fake, clock, credential=refused).doctor([offering_in("eastus")])
    assert [(c.name, c.ok) for c in checks] == [("credentials", False)]
    assert "az login" in checks[0].fix and "DefaultAzureCredential" in checks[0].detail
    assert refused.scopes == ["https://management.azure.com/.default"]


def test_doctor_reports_a_missing_or_foreign_subscription(
    fake: FakeAzure, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AZURE_SUBSCRIPTION_ID", raising=False)
    for subscription in (None, "someone-elses"):
        azure = AzureProvider(
            CloudOptions(subscription_id=subscription),
            credential=FakeCredential(),
            transport=fake,
            sleep=clock.sleep,
        )
        checks = azure.doctor([offering_in("eastus")])
        assert [(c.name, c.ok) for c in checks] == [("credentials", True), ("subscription", False)]
        assert "az account list" in checks[1].fix


# -- the contract harness -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "raised"),
    [("capacity", CapacityError), ("quota", QuotaError), ("credentials", CredentialsError)],
)
def test_the_harness_injects_each_kind_in_one_placement(kind: str, raised: type) -> None:
    with harness() as h:
        home = h.provider.placements(h.candidate)
        away = h.provider.placements(h.alternatives[0])
        assert home == (EAST,) and away == (Placement("westus2"),)
        h.fail(home[0], kind)
        launch = request()
        with pytest.raises(raised):
            h.provider.run_instances(launch)
        assert h.live_ids() == set() and h.leftovers("cherrypick-s1") == []
        elsewhere = LaunchRequest(h.alternatives[0], away[0], "c-w", launch.tags, 60, KEY)
        record = h.provider.run_instances(elsewhere)
        assert h.live_ids() == set(record.instance_ids)


def test_the_harness_transient_kind_is_retried_then_succeeds() -> None:
    with harness() as h:
        h.fail(EAST, "transient", times=2)
        record = h.provider.run_instances(request(nodes=2))
        assert h.live_ids() == set(record.instance_ids) and len(h.clock.slept) == 2
        assert h.leftovers("cherrypick-s1") == ["resource group cherrypick-s1-t1-a0-rg"]
