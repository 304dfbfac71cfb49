"""The AWS provider over moto (``mock_aws``): EC2, SSM and STS as moto keeps them, and what
moto cannot answer injected at botocore's network edge.

botocore emits ``before-call.<service>.<Operation>`` before it sends a request, and a handler
that returns ``(http_response, parsed_body)`` answers the call instead of the network
(``BaseClient._make_api_call``): a 4xx/5xx answer is raised as the ``ClientError`` AWS would
give. The harness uses that for the errors a real account meets (no capacity in a zone, a vCPU
quota, refused credentials, throttling), which moto never produces, and for Service Quotas,
which moto implements only for VPC quotas.

moto refuses to store parameters under ``/aws/``, and its Amazon-owned images are a fixed set,
so the public Deep Learning AMI and its SSM parameter are seeded into moto's own backends.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.loaders
import botocore.session
from botocore.awsrequest import AWSResponse
from cherrypick.providers._aws_setup import DLAMI_NAME, DLAMI_PARAMETER
from cherrypick.providers._cloud import resource_name
from cherrypick.providers.aws import AwsProvider
from cherrypick.providers.base import TAG_SEARCH, Candidate, CloudOptions, Offering, Placement
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends
from moto.ssm.models import Parameter, ssm_backends

REGION = "us-east-1"
ALT_REGION = "us-west-2"
#: Zone IDs, as the catalog lists them (moto's us-east-1a..c are use1-az6, -az1, -az2).
ZONES = ("use1-az1", "use1-az2", "use1-az4")
ALT_ZONES = ("usw2-az1", "usw2-az2")
#: The account that publishes the Deep Learning AMIs (owner alias ``amazon``).
DLAMI_OWNER = "898082745236"
SSH_CIDR = "203.0.113.7/32"
#: The real answers of EC2 for each kind of failure: code, HTTP status, message.
ERRORS = {
    "capacity": (
        "InsufficientInstanceCapacity",
        500,
        "We currently do not have sufficient g5.xlarge capacity in the Availability Zone you"
        " requested. Our system will be working on provisioning additional capacity.",
    ),
    "quota": (
        "VcpuLimitExceeded",
        400,
        "You have requested more vCPU capacity than your current vCPU limit of 0 allows for the"
        " instance bucket that the specified instance type belongs to.",
    ),
    "credentials": ("AuthFailure", 401, "AWS was not able to validate the provided credentials"),
    "transient": ("RequestLimitExceeded", 503, "Request limit exceeded."),
}
#: Generous vCPU quotas (G and VT, P, Standard) in both regions unless a test says otherwise.
DEFAULT_QUOTAS = {"L-DB2E81BA": 64.0, "L-417A185B": 384.0, "L-1216C47A": 640.0}


def offering(region: str = REGION, zones: tuple[str, ...] = ZONES, **fields: Any) -> Offering:
    values: dict[str, Any] = dict(
        provider="aws", region=region, instance_type="g5.xlarge", vcpus=4, memory_gib=16.0,
        gpu="A10G", gpus_per_node=1, gpu_memory_gib=24.0, interconnect="pcie",
        price_per_hour=1.006, spot_price_per_hour=0.45, extra={"zones": zones},
    )  # fmt: skip
    return Offering(**(values | fields))


def error_answer(code: str, status: int, message: str) -> tuple[AWSResponse, dict[str, Any]]:
    """What botocore makes of an AWS error answer: the HTTP response and the parsed body."""
    http = AWSResponse("https://fake.amazonaws.com/", status, {}, None)
    parsed = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": "fake"},
    }
    return http, parsed


@dataclass
class _Failure:
    placement: Placement
    code: str
    status: int
    message: str
    times: int
    after: int


@dataclass
class AwsHarness:
    """The provider over moto, and the fake's own view of what it holds."""

    session: Any
    own: Any  # a session of the harness, apart from the provider's (no injected answers)
    provider: AwsProvider = field(init=False)
    options: CloudOptions = field(default_factory=lambda: CloudOptions(ssh_cidr=SSH_CIDR))
    error_kinds: frozenset[str] = frozenset(ERRORS)
    quotas: dict[tuple[str, str], float] = field(default_factory=dict)
    launches: list[dict[str, Any]] = field(default_factory=list)
    images: dict[str, str] = field(default_factory=dict)
    sts_error: str | None = None
    slept: list[float] = field(default_factory=list)
    _failures: list[_Failure] = field(default_factory=list)
    _clients: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.candidate = Candidate(offering(), 1)
        self.pair = Candidate(offering(), 2)
        self.alternatives = [Candidate(offering(ALT_REGION, ALT_ZONES), 1)]
        for region in (REGION, ALT_REGION):
            self.quotas |= {(region, code): value for code, value in DEFAULT_QUOTAS.items()}
        events = self.session.events
        events.register("before-call.ec2.RunInstances", self._run_instances)
        events.register("before-call.service-quotas.GetServiceQuota", self._quota)
        events.register("before-call.service-quotas.GetAWSDefaultServiceQuota", self._quota)
        events.register("before-call.sts.GetCallerIdentity", self._identity)
        self.provider = self.make_provider(self.options)

    def make_provider(self, options: CloudOptions, **kwargs: Any) -> AwsProvider:
        return AwsProvider(
            options,
            session=self.session,
            regions=(REGION, ALT_REGION),
            sleep=self.slept.append,
            **kwargs,
        )

    # -- the contract's interface ---------------------------------------------------------------

    def fail(self, placement: Placement, kind: str, times: int = 1, *, after: int = 0) -> None:
        """The next ``times`` launches in ``placement`` (after ``after`` that pass) answer with
        EC2's error of ``kind`` (a key of ``ERRORS``, or any EC2 error code)."""
        code, status, message = ERRORS.get(kind, (kind, 400, f"{kind} (injected)"))
        self._failures.append(_Failure(placement, code, status, message, times, after))

    def live_ids(self) -> set[str]:
        live = ["pending", "running", "shutting-down", "stopping", "stopped"]
        filters = [{"Name": "instance-state-name", "Values": live}]
        return {
            i["InstanceId"]
            for region in (REGION, ALT_REGION)
            for r in self.ec2(region).describe_instances(Filters=filters)["Reservations"]
            for i in r["Instances"]
        }

    def leftovers(self, search_tag: str) -> list[str]:
        found = []
        for region in (REGION, ALT_REGION):
            ec2 = self.ec2(region)
            for key in ec2.describe_key_pairs()["KeyPairs"]:
                if _ours(key, resource_name(search_tag, "key"), "KeyName", search_tag):
                    found.append(f"key pair {key['KeyName']} in {region}")
            for group in ec2.describe_security_groups()["SecurityGroups"]:
                if _ours(group, resource_name(search_tag, "ssh"), "GroupName", search_tag):
                    found.append(f"security group {group['GroupName']} in {region}")
        return found

    # -- for the AWS tests ----------------------------------------------------------------------

    def ec2(self, region: str = REGION) -> Any:
        if region not in self._clients:
            self._clients[region] = self.own.client("ec2", region_name=region)
        return self._clients[region]

    def add_image(
        self, region: str, name: str, *, owner: str = "amazon", created: str = "2026-01-01"
    ) -> str:
        """An available image named ``name``, Amazon's (``owner="amazon"``) or the account's."""
        image = self.ec2(region).register_image(Name=name, Architecture="x86_64")["ImageId"]
        ami = ec2_backends[DEFAULT_ACCOUNT_ID][region].amis[image]
        if owner == "amazon":
            ami.owner_alias, ami.owner_id = "amazon", DLAMI_OWNER
        when = datetime.datetime.fromisoformat(created)
        ami.creation_date = when.replace(tzinfo=datetime.timezone.utc)
        return str(image)

    def put_public_parameter(self, region: str, name: str, value: str) -> None:
        """A parameter under ``/aws/service`` (moto refuses ``put_parameter`` there)."""
        now = datetime.datetime.now(datetime.timezone.utc)
        parameter = Parameter(
            DEFAULT_ACCOUNT_ID, name, value, "String", None, None, None, now, 1, "aws:ec2:image"
        )
        ssm_backends[DEFAULT_ACCOUNT_ID][region]._parameters[name].append(parameter)

    def seed_dlami(self, region: str, *, parameter: bool = True) -> str:
        image = self.add_image(region, DLAMI_NAME["x86_64"].rstrip("*") + " 20260101")
        if parameter:
            self.put_public_parameter(region, DLAMI_PARAMETER.format(arch="x86_64"), image)
        self.images[region] = image
        return image

    def zone_of(self, subnet: str, region: str) -> tuple[str, str]:
        found = self.ec2(region).describe_subnets(SubnetIds=[subnet])["Subnets"][0]
        return found["AvailabilityZone"], found["AvailabilityZoneId"]

    # -- the injected answers -------------------------------------------------------------------

    def _run_instances(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> Any:
        region = context["client_region"]
        body = dict(params["body"])
        zones = self.zone_of(body["SubnetId"], region) if "SubnetId" in body else ()
        self.launches.append(body | {"region": region, "zones": zones})
        for failure in self._failures:
            where = failure.placement
            if where.region != region or (where.zone is not None and where.zone not in zones):
                continue
            if failure.after > 0:
                failure.after -= 1
                return None
            if failure.times > 0:
                failure.times -= 1
                return error_answer(failure.code, failure.status, failure.message)
        return None

    def _quota(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> Any:
        request = json.loads(params["body"])  # Service Quotas speaks JSON
        value = self.quotas.get((context["client_region"], request["QuotaCode"]))
        if value is None:
            return error_answer("NoSuchResourceException", 400, "The request failed.")
        quota = {"ServiceCode": "ec2", "QuotaCode": request["QuotaCode"], "Value": value}
        quota["QuotaName"] = f"quota {request['QuotaCode']}"
        return AWSResponse("https://fake/", 200, {}, None), {"Quota": quota}

    def _identity(self, **_: Any) -> Any:
        if self.sts_error is None:
            return None
        return error_answer(self.sts_error, 403, "The security token included is invalid.")


def _ours(resource: dict[str, Any], name: str, name_key: str, search_tag: str) -> bool:
    tags = {t["Key"]: t["Value"] for t in resource.get("Tags", [])}
    return resource.get(name_key) == name or tags.get(TAG_SEARCH) == search_tag


#: One loader of botocore's service models for every session of the tests: parsing EC2's
#: model takes most of a second, and a session's loader would parse it again for each test.
_MODELS = botocore.loaders.create_loader()


def session() -> Any:
    """A session with moto's fake keys, reading nothing of the caller's environment."""
    core = botocore.session.Session()
    core.register_component("data_loader", _MODELS)
    return boto3.session.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        aws_session_token="testing",
        region_name=REGION,
        botocore_session=core,
    )


@contextlib.contextmanager
def harness(*, seed_parameter: bool = True) -> Iterator[AwsHarness]:
    """The provider over a fresh moto account with the Deep Learning AMI in both regions."""
    settings = {
        # The caller's own AWS files must not leak settings (a profile's region, retries) in.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        # moto's stock images cost a second per region and none of them is used.
        "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
    }
    saved = {key: os.environ.get(key) for key in settings}
    os.environ.update(settings)
    try:
        with mock_aws():
            made = AwsHarness(session(), session())
            for region in (REGION, ALT_REGION):
                made.seed_dlami(region, parameter=seed_parameter)
            yield made
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
