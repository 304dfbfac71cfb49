"""The AWS provider: EC2 machines launched with boto3, one ``run_instances`` call per node.

In each region a search launches in, the provider first imports the search's SSH key as a key
pair and makes a security group in the default VPC that lets ``ssh_cidr`` (default: the
caller's address /32) reach port 22 and lets the group's machines reach each other on every port
(multi-node training talks on ports that are only known at run time); both are named after and
tagged with the search, and ``cleanup_search`` deletes them. Each machine boots in the default
subnet of the placement's zone (a catalog zone is a zone ID, ``use1-az2``, or a zone name,
``us-east-1a``), from the AWS Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) unless
``image`` names another, with the self-destruct boot script and shutdown meaning terminate: a
machine whose controller died ends itself and is gone, not stopped.

Errors are classified in ``_aws_errors``, quotas read in ``_aws_quota``. boto3 is imported only
when the first client is made.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from cherrypick.providers import _cloud
from cherrypick.providers._aws_errors import DOCTOR_ADVICE, GONE_CODES, classify
from cherrypick.providers._aws_quota import QuotaReader, quota_for
from cherrypick.providers._aws_setup import RegionSetup, SearchResources, aws_filter, tag_specs
from cherrypick.providers.base import (
    CREATED_BY,
    TAG_NODE_RANK,
    TAG_SEARCH,
    Candidate,
    CloudOptions,
    ClusterInfo,
    DoctorCheck,
    Instance,
    InstanceState,
    LaunchRequest,
    Offering,
    Placement,
    Provider,
    ProvisionRecord,
)

from cherrypick.errors import ProvisioningError

if TYPE_CHECKING:
    import boto3

__all__ = ["DEFAULT_USER", "AwsProvider"]

T = TypeVar("T")

#: The login of the Ubuntu-based Deep Learning AMI.
DEFAULT_USER = "ubuntu"
SPOT_MARKET = {
    "MarketType": "spot",
    "SpotOptions": {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"},
}
#: How often ``wait_instances`` asks EC2 again.
POLL_S = 5.0
_STATES = {
    "pending": InstanceState.PENDING,
    "running": InstanceState.RUNNING,
    "shutting-down": InstanceState.STOPPING,
    "stopping": InstanceState.STOPPING,
    "stopped": InstanceState.STOPPING,
    "terminated": InstanceState.TERMINATED,
}
_LIVE = ("pending", "running", "shutting-down", "stopping", "stopped")
_ENDED = frozenset({"shutting-down", "terminated", "stopping", "stopped"})


class AwsProvider(Provider):
    """EC2 machines for trials (see the module docstring).

    ``session``: the boto3 session to make clients from (default: a new one, which reads the
    standard credential chain); ``regions``: the regions ``list_launched`` and ``cleanup_search``
    look in (default: those of the bundled AWS catalog); ``sleep`` and ``clock``: how waiting
    and backoff pass time; ``fetch_ip``: how the caller's public address is asked for.
    """

    name = "aws"
    needs_ssh_key = True
    minimum_billed_s = 60.0

    def __init__(
        self,
        options: CloudOptions | None = None,
        *,
        session: boto3.session.Session | None = None,
        regions: Sequence[str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        fetch_ip: Callable[[str], str] | None = None,
    ) -> None:
        self.options = options if options is not None else CloudOptions()
        self.ssh_user = self.options.ssh_user or DEFAULT_USER
        self._session = session
        self._regions = tuple(regions) if regions is not None else None
        self._launched_in: set[str] = set()
        self._sleep = sleep
        self._clock = clock
        self._fetch_ip = fetch_ip
        # boto3 clients are thread-safe, sessions are not: clients are made under a lock.
        self._clients: dict[tuple[str, str], Any] = {}
        self._client_lock = threading.Lock()
        self._resources = SearchResources(
            self._client, self._call, self.options, fetch_ip=fetch_ip, sleep=sleep
        )
        self._quotas = QuotaReader(lambda r: self._client("service-quotas", r), self.options.spot)

    # -- the provider interface ---------------------------------------------------------------

    def run_instances(self, request: LaunchRequest) -> ProvisionRecord:
        placement = request.placement
        search = request.tags.get(TAG_SEARCH, CREATED_BY)
        offering = request.candidate.offering
        setup = self._resources.prepare(
            placement.region, search, offering.instance_type, request.ssh_public_key
        )
        subnet = (
            self._resources.subnet(placement.region, placement.zone) if placement.zone else None
        )
        self._launched_in.add(placement.region)
        launched: list[str] = []
        try:
            for rank in range(request.candidate.nodes):
                launched.append(self._launch(request, rank, setup, subnet))
        except BaseException:
            self._roll_back(placement.region, launched)
            raise
        return ProvisionRecord(self.name, placement, request.cluster_name, tuple(launched))

    def wait_instances(self, record: ProvisionRecord, timeout_s: float) -> ClusterInfo:
        region = record.placement.region
        deadline = self._clock() + timeout_s
        while True:
            described = {d["InstanceId"]: d for d in self._described(region, record.instance_ids)}
            _raise_if_ended(region, described.values())
            if all(_ready(described.get(i)) for i in record.instance_ids):
                instances = tuple(self._instance(described[i], region) for i in record.instance_ids)
                ordered = tuple(sorted(instances, key=lambda i: i.node_rank))
                return ClusterInfo(self.name, record.cluster_name, ordered)
            if self._clock() >= deadline:
                message = f"{record.cluster_name} not running after {timeout_s:g} s"
                zone = record.placement.zone
                raise ProvisioningError(self.name, message, region=region, zone=zone)
            self._sleep(POLL_S)

    def query_instances(self, region: str, instance_ids: Sequence[str]) -> dict[str, InstanceState]:
        known = {d["InstanceId"]: d["State"]["Name"] for d in self._described(region, instance_ids)}
        states = {i: known.get(i, "terminated") for i in instance_ids}
        return {i: _STATES.get(state, InstanceState.PENDING) for i, state in states.items()}

    def terminate_instances(self, region: str, instance_ids: Sequence[str]) -> None:
        ids = list(instance_ids)
        if not ids:
            return
        ec2 = self._client("ec2", region)
        try:
            self._call(lambda: ec2.terminate_instances(InstanceIds=ids), region)
        except ProvisioningError as error:
            if error.code not in GONE_CODES:
                raise
            # One unknown id fails the whole call: end the others one by one.
            if len(ids) > 1:
                for instance_id in ids:
                    self.terminate_instances(region, [instance_id])

    def list_launched(self, tags: Mapping[str, str]) -> Sequence[Instance]:
        filters = [aws_filter(f"tag:{key}", value) for key, value in tags.items()]
        filters.append({"Name": "instance-state-name", "Values": list(_LIVE)})
        return [
            self._instance(described, region)
            for region in self._known_regions()
            for described in self._describe(region, filters)
        ]

    def quota_shortfall(self, candidate: Candidate, placement: Placement) -> str | None:
        return self._quotas.shortfall(candidate, placement.region)

    def doctor(self, offerings: Sequence[Offering]) -> Sequence[DoctorCheck]:
        ours = [o for o in offerings if o.provider == self.name]
        region = ours[0].region if ours else "us-east-1"
        identity = self._identity(region)
        if not identity.ok:
            return [identity]
        return [identity, *self._quotas.checks(ours)]

    def cleanup_search(self, search_tag: str) -> Sequence[str]:
        return [
            deleted
            for region in self._known_regions()
            for deleted in self._resources.delete(region, search_tag)
        ]

    # -- launching ----------------------------------------------------------------------------

    def _launch(
        self, request: LaunchRequest, rank: int, setup: RegionSetup, subnet: str | None
    ) -> str:
        placement = request.placement
        params = self._launch_params(request, rank, setup, subnet)
        quota = quota_for(request.candidate.offering.instance_type, self.options.spot)
        ec2 = self._client("ec2", placement.region)
        answer = self._call(
            lambda: ec2.run_instances(**params),
            placement.region,
            placement.zone,
            quota=quota.name if quota else None,
        )
        return str(answer["Instances"][0]["InstanceId"])

    def _launch_params(
        self, request: LaunchRequest, rank: int, setup: RegionSetup, subnet: str | None
    ) -> dict[str, Any]:
        tags = {**request.tags, TAG_NODE_RANK: str(rank), "Name": f"{request.cluster_name}-{rank}"}
        params: dict[str, Any] = {
            "ImageId": setup.image_id,
            "InstanceType": request.candidate.offering.instance_type,
            "MinCount": 1,
            "MaxCount": 1,
            "SecurityGroupIds": [setup.security_group_id],
            "UserData": _cloud.self_destruct_script(request.max_life_s),
            "InstanceInitiatedShutdownBehavior": "terminate",
            "TagSpecifications": tag_specs(("instance", "volume"), tags),
            # One token per machine: a call retried after a lost answer does not launch twice.
            "ClientToken": uuid.uuid4().hex,
        }
        if subnet is not None:
            params["SubnetId"] = subnet
        if setup.key_name is not None:
            params["KeyName"] = setup.key_name
        if self.options.spot:
            params["InstanceMarketOptions"] = SPOT_MARKET
        return params

    def _roll_back(self, region: str, launched: Sequence[str]) -> None:
        # The launch error is what the failover must see; a rollback that fails leaves tagged
        # machines that the search's final sweep (list_launched) finds and ends.
        with contextlib.suppress(ProvisioningError):
            self.terminate_instances(region, launched)

    # -- reading ----------------------------------------------------------------------------------

    def _identity(self, region: str) -> DoctorCheck:
        sts = self._client("sts", region)
        try:
            who = self._call(lambda: sts.get_caller_identity(), region)
        except ProvisioningError as error:
            fix = "configure credentials: `aws configure`, `aws sso login` or AWS_PROFILE"
            detail = str(error).removesuffix(f"; {DOCTOR_ADVICE}")
            return DoctorCheck(self.name, "credentials", False, detail, fix)
        detail = f"account {who.get('Account')} as {who.get('Arn')}"
        return DoctorCheck(self.name, "credentials", True, detail)

    def _described(self, region: str, instance_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The instances of ``instance_ids`` that EC2 knows (a filter, unlike InstanceIds,
        does not fail on an unknown id)."""
        ids = list(instance_ids)
        chunks = [ids[i : i + 200] for i in range(0, len(ids), 200)]
        by_id = [[aws_filter("instance-id", *chunk)] for chunk in chunks]
        return [d for filters in by_id for d in self._describe(region, filters)]

    def _describe(self, region: str, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        pages = self._client("ec2", region).get_paginator("describe_instances")
        return self._call(
            lambda: [
                described
                for page in pages.paginate(Filters=filters)
                for reservation in page["Reservations"]
                for described in reservation["Instances"]
            ],
            region,
        )

    def _instance(self, described: Mapping[str, Any], region: str) -> Instance:
        tags = {t["Key"]: t["Value"] for t in described.get("Tags", [])}
        extra = {
            "zone": described.get("Placement", {}).get("AvailabilityZone"),
            "instance_type": described.get("InstanceType"),
            "spot": described.get("InstanceLifecycle") == "spot",
        }
        return Instance(
            provider=self.name,
            instance_id=str(described["InstanceId"]),
            region=region,
            node_rank=int(tags.get(TAG_NODE_RANK, "0")),
            internal_ip=str(described.get("PrivateIpAddress", "")),
            external_ip=described.get("PublicIpAddress"),
            ssh_port=22,
            ssh_user=self.ssh_user,
            tags=MappingProxyType(tags),
            extra=MappingProxyType(extra),
        )

    def _known_regions(self) -> list[str]:
        """The catalog's regions (or those given) and any other this provider launched in."""
        if self._regions is None:
            from cherrypick.catalog import load_catalog

            self._regions = tuple(sorted({o.region for o in load_catalog([self.name])}))
        return sorted(set(self._regions) | self._launched_in)

    def _call(
        self,
        call: Callable[[], T],
        region: str,
        zone: str | None = None,
        quota: str | None = None,
    ) -> T:
        return _cloud.retrying(
            call,
            lambda exc: classify(exc, region=region, zone=zone, quota=quota),
            sleep=self._sleep,
        )

    def _client(self, service: str, region: str) -> Any:
        with self._client_lock:
            if (service, region) not in self._clients:
                self._clients[(service, region)] = self._make_client(service, region)
            return self._clients[(service, region)]

    def _make_client(self, service: str, region: str) -> Any:
        import boto3
        from botocore.config import Config

        if self._session is None:
            self._session = boto3.session.Session()
        # Retries are ours (``_cloud.retrying``, classified): botocore's would multiply them.
        config = Config(retries={"mode": "standard", "max_attempts": 1})
        return self._session.client(service, region_name=region, config=config)


def _raise_if_ended(region: str, described: Iterable[Mapping[str, Any]]) -> None:
    for d in described:
        state = d["State"]["Name"]
        if state in _ENDED:
            reason = d.get("StateReason", {}).get("Message", "no reason given")
            message = f"instance {d['InstanceId']} is {state} ({reason})"
            zone = d.get("Placement", {}).get("AvailabilityZone")
            raise ProvisioningError("aws", message, region=region, zone=zone)


def _ready(described: Mapping[str, Any] | None) -> bool:
    return (
        described is not None
        and described["State"]["Name"] == "running"
        and bool(described.get("PrivateIpAddress"))
    )
