"""What the AWS provider makes for a search in a region before its first machine: the image to
boot, the security group and the key pair (and their deletion once the search is over), and
the subnet of each zone it launches in.

Every API call goes through the provider's ``call`` (classified errors, retried when transient).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from cherrypick.providers import _cloud
from cherrypick.providers._aws_errors import classify
from cherrypick.providers.base import CREATED_BY, TAG_CREATED_BY, TAG_SEARCH, CloudOptions

from cherrypick.errors import ProvisioningError, Scope

__all__ = [
    "DLAMI_NAME",
    "DLAMI_PARAMETER",
    "RegionSetup",
    "SearchResources",
    "aws_filter",
    "tag_specs",
]

T = TypeVar("T")

#: The Deep Learning AMI's public SSM parameter and image name, per CPU architecture, as the
#: DLAMI developer guide ("Finding the ID of a DLAMI" and the release notes) gives them.
DLAMI_PARAMETER = (
    "/aws/service/deeplearning/ami/{arch}/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id"
)
DLAMI_NAME = {
    "x86_64": "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04)*",
    "arm64": "Deep Learning ARM64 Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04)*",
}
_ZONE_ID = re.compile(r"^[a-z]{2,4}\d-az\d+$")
#: Graviton families carry a ``g`` after the generation digit (g5g, c7gn, m6gd).
_GRAVITON = re.compile(r"^[a-z]+\d+[a-z]*g[a-z]*\.")


class Call(Protocol):
    """The provider's way to make an API call (see ``AwsProvider._call``)."""

    def __call__(self, call: Callable[[], T], region: str, zone: str | None = None) -> T: ...


@dataclass(frozen=True)
class RegionSetup:
    """What a search's launches in one region share."""

    image_id: str
    security_group_id: str
    key_name: str | None


class SearchResources:
    """Makes, caches and deletes a search's resources; ``client(service, region)`` gives a boto3
    client, ``sleep`` how a retry waits."""

    def __init__(
        self,
        client: Callable[[str, str], Any],
        call: Call,
        options: CloudOptions,
        *,
        fetch_ip: Callable[[str], str] | None,
        sleep: Callable[[float], None],
    ) -> None:
        self._client = client
        self._call = call
        self._options = options
        self._fetch_ip = fetch_ip
        self._sleep = sleep
        self._setups: dict[tuple[str, str, str], RegionSetup] = {}
        self._images: dict[tuple[str, str], str] = {}
        # Held while making a region's resources, so concurrent trials do not make two groups.
        self._lock = threading.Lock()

    def prepare(
        self, region: str, search: str, instance_type: str, public_key: str | None
    ) -> RegionSetup:
        """The search's image (for ``instance_type``'s architecture), security group and key
        pair in ``region``, made on first use."""
        arch = "arm64" if _GRAVITON.match(instance_type) else "x86_64"
        key = (region, search, f"{arch} {public_key}")
        with self._lock:
            if key not in self._setups:
                vpc = self._default_vpc(region)
                self._setups[key] = RegionSetup(
                    image_id=self._image(region, arch),
                    security_group_id=self._security_group(region, search, vpc),
                    key_name=self._key_pair(region, search, public_key),
                )
            return self._setups[key]

    def subnet(self, region: str, zone: str) -> str:
        """The default subnet of ``zone`` (a zone ID such as ``use1-az2``, or a zone name)."""
        by = "availability-zone-id" if _ZONE_ID.match(zone) else "availability-zone"
        filters = [aws_filter(by, zone), aws_filter("default-for-az", "true")]
        ec2 = self._client("ec2", region)
        subnets = self._call(lambda: ec2.describe_subnets(Filters=filters), region, zone)
        if not subnets["Subnets"]:
            message = (
                f"no default subnet in zone {zone}: aws ec2 create-default-subnet --{by} {zone}"
            )
            raise ProvisioningError("aws", message, region=region, zone=zone, scope=Scope.ZONE)
        return str(subnets["Subnets"][0]["SubnetId"])

    def delete(self, region: str, search: str) -> list[str]:
        """Delete the search's key pair and security group in ``region``; what was deleted."""
        with self._lock:
            self._setups = {k: v for k, v in self._setups.items() if k[:2] != (region, search)}
        return self._delete_key_pair(region, search) + self._delete_security_group(region, search)

    # -- the network ----------------------------------------------------------------------------

    def _default_vpc(self, region: str) -> str:
        ec2 = self._client("ec2", region)
        default = [aws_filter("is-default", "true")]
        vpcs = self._call(lambda: ec2.describe_vpcs(Filters=default), region)["Vpcs"]
        if not vpcs:
            message = f"no default VPC: aws ec2 create-default-vpc --region {region}"
            raise ProvisioningError("aws", message, region=region, scope=Scope.REGION)
        return str(vpcs[0]["VpcId"])

    def _security_group(self, region: str, search: str, vpc: str) -> str:
        """The search's group: SSH from ``ssh_cidr``, and every port between its machines."""
        name = _cloud.resource_name(search, "ssh")
        group = self._find_group(region, name, vpc)
        if group is None:
            ec2 = self._client("ec2", region)
            made = self._call(
                lambda: ec2.create_security_group(
                    GroupName=name,
                    Description=f"cherrypick search {search}: SSH from the controller",
                    VpcId=vpc,
                    TagSpecifications=tag_specs(("security-group",), _search_tags(search)),
                ),
                region,
            )
            group = str(made["GroupId"])
        cidr = _cloud.caller_cidr(self._options.ssh_cidr, self._fetch_ip, "clouds.aws.ssh_cidr")
        ssh = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": cidr}]}
        self._allow(region, group, ssh)
        self._allow(region, group, {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": group}]})
        return group

    def _find_group(self, region: str, name: str, vpc: str | None) -> str | None:
        ec2 = self._client("ec2", region)
        filters = [aws_filter("group-name", name)]
        if vpc is not None:
            filters.append(aws_filter("vpc-id", vpc))
        found = self._call(lambda: ec2.describe_security_groups(Filters=filters), region)
        groups = found["SecurityGroups"]
        return str(groups[0]["GroupId"]) if groups else None

    def _allow(self, region: str, group: str, permission: Mapping[str, Any]) -> None:
        ec2 = self._client("ec2", region)
        try:
            self._call(
                lambda: ec2.authorize_security_group_ingress(
                    GroupId=group, IpPermissions=[permission]
                ),
                region,
            )
        except ProvisioningError as error:
            if error.code != "InvalidPermission.Duplicate":
                raise

    def _key_pair(self, region: str, search: str, public_key: str | None) -> str | None:
        """The search's key pair holding ``public_key``; one of that name holding another key
        (an earlier run of the search) is replaced."""
        if public_key is None:
            return None
        name = _cloud.resource_name(search, "key")
        ec2 = self._client("ec2", region)
        by_name = [aws_filter("key-name", name)]
        held = self._call(
            lambda: ec2.describe_key_pairs(Filters=by_name, IncludePublicKey=True), region
        )["KeyPairs"]
        if held and _same_key(held[0].get("PublicKey", ""), public_key):
            return name
        if held:
            self._call(lambda: ec2.delete_key_pair(KeyName=name), region)
        self._call(
            lambda: ec2.import_key_pair(
                KeyName=name,
                PublicKeyMaterial=public_key.encode(),
                TagSpecifications=tag_specs(("key-pair",), _search_tags(search)),
            ),
            region,
        )
        return name

    def _delete_key_pair(self, region: str, search: str) -> list[str]:
        name = _cloud.resource_name(search, "key")
        ec2 = self._client("ec2", region)
        by_name = [aws_filter("key-name", name)]
        if not self._call(lambda: ec2.describe_key_pairs(Filters=by_name), region)["KeyPairs"]:
            return []
        self._call(lambda: ec2.delete_key_pair(KeyName=name), region)
        return [f"key pair {name} in {region}"]

    def _delete_security_group(self, region: str, search: str) -> list[str]:
        name = _cloud.resource_name(search, "ssh")
        group = self._find_group(region, name, None)
        if group is None:
            return []
        ec2 = self._client("ec2", region)

        def in_use_is_transient(exc: Exception) -> ProvisioningError | None:
            # A terminated machine's network interface lets go of the group a little later.
            error = classify(exc, region=region)
            if error is not None and error.code == "DependencyViolation":
                error.scope = Scope.RETRY
            return error

        try:
            _cloud.retrying(
                lambda: ec2.delete_security_group(GroupId=group),
                in_use_is_transient,
                sleep=self._sleep,
            )
        except ProvisioningError as error:
            if error.code != "InvalidGroup.NotFound":
                raise
            return []
        return [f"security group {name} ({group}) in {region}"]

    # -- the image ------------------------------------------------------------------------------

    def _image(self, region: str, arch: str) -> str:
        """The AMI to boot: ``image`` as an AMI id, an SSM parameter (``/...``) or a name
        pattern of your own or Amazon's images; by default the Deep Learning AMI."""
        configured = self._options.image
        if configured is not None and configured.startswith("ami-"):
            return configured
        if (region, arch) not in self._images:
            image = self._resolve_image(region, arch, configured)
            if image is None:
                what = configured or f"the Deep Learning AMI ({DLAMI_NAME[arch]})"
                message = f"no image found for {what}; set clouds.aws.image to an AMI id"
                raise ProvisioningError("aws", message, region=region, scope=Scope.REGION)
            self._images[(region, arch)] = image
        return self._images[(region, arch)]

    def _resolve_image(self, region: str, arch: str, configured: str | None) -> str | None:
        if configured is None:
            parameter = self._parameter(region, DLAMI_PARAMETER.format(arch=arch))
            return parameter or self._newest_image(region, DLAMI_NAME[arch], ("amazon",))
        if configured.startswith("/"):
            return self._parameter(region, configured)
        return self._newest_image(region, configured, ("self", "amazon"))

    def _parameter(self, region: str, name: str) -> str | None:
        ssm = self._client("ssm", region)
        try:
            answer = self._call(lambda: ssm.get_parameter(Name=name), region)
        except ProvisioningError as error:
            if error.scope is Scope.CLOUD:
                raise
            return None  # not there, or not readable: the search by name may still find it
        return str(answer["Parameter"]["Value"])

    def _newest_image(self, region: str, pattern: str, owners: Sequence[str]) -> str | None:
        ec2 = self._client("ec2", region)
        filters = [aws_filter("name", pattern), aws_filter("state", "available")]
        images = self._call(
            lambda: ec2.describe_images(Owners=list(owners), Filters=filters), region
        )["Images"]
        if not images:
            return None
        return str(max(images, key=lambda image: image.get("CreationDate", ""))["ImageId"])


def aws_filter(name: str, *values: str) -> dict[str, Any]:
    """An EC2 ``Filters`` entry."""
    return {"Name": name, "Values": list(values)}


def tag_specs(kinds: Sequence[str], tags: Mapping[str, str]) -> list[dict[str, Any]]:
    """EC2 ``TagSpecifications`` giving ``tags`` to each resource type of ``kinds``."""
    listed = [{"Key": k, "Value": v} for k, v in tags.items()]
    return [{"ResourceType": kind, "Tags": listed} for kind in kinds]


def _search_tags(search: str) -> dict[str, str]:
    return {TAG_CREATED_BY: CREATED_BY, TAG_SEARCH: search}


def _same_key(held: str, wanted: str) -> bool:
    """Whether two OpenSSH public keys are the same key (their comments may differ)."""
    return held.split()[:2] == wanted.split()[:2]
