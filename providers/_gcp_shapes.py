"""What the GCP provider sends and reads back: machine and accelerator types, image, names,
labels, the request bodies of ``instances.insert`` and ``firewalls.insert``, and an instance
resource as an :class:`Instance` and an :class:`InstanceState`.

Pure functions over plain values; nothing here calls the API or imports googleapiclient.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cherrypick.providers.base import TAG_NODE_RANK, Instance, InstanceState, Offering

from cherrypick.errors import InputError

__all__ = [
    "DEFAULT_IMAGE",
    "DEFAULT_USER",
    "NETWORK",
    "MachineShape",
    "firewall_body",
    "instance_body",
    "instance_name",
    "instance_of",
    "instance_state",
    "is_ready",
    "label_filter",
    "label_value",
    "labels",
    "machine_shape",
    "quota_metric",
    "region_of",
    "source_image",
]

#: The login the ``ssh-keys`` metadata creates on the machine.
DEFAULT_USER = "cherrypick"
#: Deep Learning VM images: CUDA 12.8 with NVIDIA driver 570 on Ubuntu 22.04, a family of the
#: public ``deeplearning-platform-release`` project (cloud.google.com/deep-learning-vm/docs/images).
IMAGE_PROJECT = "deeplearning-platform-release"
IMAGE_FAMILY = "common-cu128-ubuntu-2204-nvidia-570"
DEFAULT_IMAGE = f"projects/{IMAGE_PROJECT}/global/images/family/{IMAGE_FAMILY}"
#: The image itself takes about 50 GB; the rest holds the workload's data and packages.
BOOT_DISK_GB = 100
NETWORK = "global/networks/default"

#: GPU names of the catalog -> Compute Engine accelerator types (GCP docs, "GPU platforms",
#: cloud.google.com/compute/docs/gpus).
ACCELERATOR_TYPES = {
    "T4": "nvidia-tesla-t4",
    "V100": "nvidia-tesla-v100",
    "P100": "nvidia-tesla-p100",
    "P4": "nvidia-tesla-p4",
    "K80": "nvidia-tesla-k80",
    "L4": "nvidia-l4",
    "A100": "nvidia-tesla-a100",
    "A100-80GB": "nvidia-a100-80gb",
    "H100": "nvidia-h100-80gb",
    "H100-MEGA": "nvidia-h100-mega-80gb",
    "H200": "nvidia-h200-141gb",
}
#: A3 Mega carries the H100 Mega accelerator, which the catalog calls plain H100.
_SERIES_ACCELERATOR = {"a3-megagpu": "nvidia-h100-mega-80gb"}
#: Accelerator types -> their regional quota metric (GCP docs, "GPU quota",
#: cloud.google.com/compute/resource-usage#gpu_quota; the API's ``Quota.metric`` values).
QUOTA_METRICS = {
    "nvidia-tesla-t4": "NVIDIA_T4_GPUS",
    "nvidia-tesla-v100": "NVIDIA_V100_GPUS",
    "nvidia-tesla-p100": "NVIDIA_P100_GPUS",
    "nvidia-tesla-p4": "NVIDIA_P4_GPUS",
    "nvidia-tesla-k80": "NVIDIA_K80_GPUS",
    "nvidia-l4": "NVIDIA_L4_GPUS",
    "nvidia-tesla-a100": "NVIDIA_A100_GPUS",
    "nvidia-a100-80gb": "NVIDIA_A100_80GB_GPUS",
    "nvidia-h100-80gb": "NVIDIA_H100_GPUS",
    "nvidia-h100-mega-80gb": "NVIDIA_H100_MEGA_GPUS",
    "nvidia-h200-141gb": "NVIDIA_H200_GPUS",
}
#: The catalog names an N1 host with attached GPUs ``<host>+<count>x<GPU>``.
_ATTACHED = re.compile(r"^(?P<host>[a-z0-9-]+)\+(?P<count>\d+)x(?P<gpu>[A-Za-z0-9-]+)$")
_LABEL_UNSAFE = re.compile(r"[^a-z0-9_-]")
_NAME_UNSAFE = re.compile(r"[^a-z0-9-]")
#: Compute Engine instance statuses (``Instance.status``) -> what the engine needs to know.
#: Any other status (STOPPING, SUSPENDED, TERMINATED: GCP's word for stopped) is an instance
#: that still exists and bills its disk: ``stopping``, until it is deleted.
_STATES = {
    "PROVISIONING": InstanceState.PENDING,
    "STAGING": InstanceState.PENDING,
    "PENDING": InstanceState.PENDING,
    "REPAIRING": InstanceState.PENDING,
    "RUNNING": InstanceState.RUNNING,
}


@dataclass(frozen=True)
class MachineShape:
    """How an offering is asked for: a machine type, and the GPUs attached to it (N1 only:
    A2, A3 and G2 machine types carry their GPUs). ``accelerator`` is the GPUs' accelerator
    type either way (for quotas), None for a machine without GPUs."""

    machine_type: str
    accelerator: str | None
    attached: int

    @property
    def attaches_gpus(self) -> bool:
        return self.attached > 0


def machine_shape(offering: Offering) -> MachineShape:
    """The machine type and GPUs of a catalog row (``a2-highgpu-1g``, ``n1-standard-8+1xT4``)."""
    match = _ATTACHED.match(offering.instance_type)
    machine = match["host"] if match else offering.instance_type
    gpus = int(match["count"]) if match else offering.gpus_per_node
    if gpus == 0:
        return MachineShape(machine, None, 0)
    gpu = match["gpu"] if match else offering.gpu
    accelerator = _SERIES_ACCELERATOR.get(machine.rsplit("-", 1)[0]) or ACCELERATOR_TYPES.get(gpu)
    if accelerator is None:
        known = ", ".join(sorted(ACCELERATOR_TYPES))
        raise InputError(
            f"gcp: no Compute Engine accelerator type for GPU '{gpu}' (known: {known})"
        )
    # Only the N1 series takes attached GPUs ("GPU platforms": N1 + T4, V100, P100, P4, K80).
    return MachineShape(machine, accelerator, gpus if machine.startswith("n1-") else 0)


def quota_metric(shape: MachineShape) -> str | None:
    """The regional quota metric of the shape's GPUs, None without GPUs or for an unknown type."""
    return QUOTA_METRICS.get(shape.accelerator or "")


def source_image(configured: str | None) -> str:
    """The boot image: the Deep Learning VM default; a URL or ``projects/...`` path as given;
    a bare name as a family of the Deep Learning VM project."""
    if not configured:
        return DEFAULT_IMAGE
    if configured.startswith(("https://", "projects/", "global/")):
        return configured
    return f"projects/{IMAGE_PROJECT}/global/images/family/{configured}"


def region_of(zone: str) -> str:
    """``us-central1-a`` -> ``us-central1``."""
    return zone.rsplit("-", 1)[0]


def instance_name(cluster_name: str, rank: int) -> str:
    """A valid instance name (RFC 1035: a lower-case letter first, at most 63 characters) for
    rank ``rank`` of a cluster; the rank survives any shortening."""
    base = _NAME_UNSAFE.sub("-", cluster_name.lower())
    if not base[:1].isalpha():
        base = f"cp-{base}"
    suffix = f"-{rank}"
    return base[: 63 - len(suffix)].rstrip("-") + suffix


def label_value(value: str) -> str:
    """A tag value as a GCP label value: lower case, digits, ``_`` and ``-``, at most 63."""
    return _LABEL_UNSAFE.sub("_", value.lower())[:63]


def labels(tags: Mapping[str, str], rank: int | None = None) -> dict[str, str]:
    """Tags as GCP labels (cherrypick's keys are label-safe already), plus the node rank."""
    found = {label_value(k): label_value(v) for k, v in tags.items()}
    if rank is not None:
        found[TAG_NODE_RANK] = str(rank)
    return found


def label_filter(tags: Mapping[str, str]) -> str:
    """A list ``filter`` matching every one of ``tags`` (``labels.KEY = "VALUE"``)."""
    return " AND ".join(f'(labels.{k} = "{v}")' for k, v in sorted(labels(tags).items()))


def instance_body(
    *,
    name: str,
    zone: str,
    shape: MachineShape,
    image: str,
    machine_labels: Mapping[str, str],
    ssh_entry: str | None,
    startup_script: str,
    network_tag: str,
    spot: bool,
    max_life_s: float,
) -> dict[str, Any]:
    """The ``instances.insert`` body of one machine."""
    metadata = [
        {"key": "install-nvidia-driver", "value": "True"},
        {"key": "startup-script", "value": startup_script},
    ]
    if ssh_entry is not None:
        metadata.insert(0, {"key": "ssh-keys", "value": ssh_entry})
    body: dict[str, Any] = {
        "name": name,
        "machineType": f"zones/{zone}/machineTypes/{shape.machine_type}",
        "labels": dict(machine_labels),
        "tags": {"items": [network_tag]},
        "metadata": {"items": metadata},
        "disks": [_boot_disk(zone, image)],
        "networkInterfaces": [
            {"network": NETWORK, "accessConfigs": [{"type": "ONE_TO_ONE_NAT", "name": "nat"}]}
        ],
        "scheduling": _scheduling(spot, max_life_s),
    }
    if shape.attaches_gpus:
        accelerator = f"zones/{zone}/acceleratorTypes/{shape.accelerator}"
        body["guestAccelerators"] = [
            {"acceleratorType": accelerator, "acceleratorCount": shape.attached}
        ]
    return body


def _boot_disk(zone: str, image: str) -> dict[str, Any]:
    # pd-balanced: the one persistent disk type every GPU series takes (G2 and A3 refuse the
    # default pd-standard).
    return {
        "boot": True,
        "autoDelete": True,
        "initializeParams": {
            "sourceImage": image,
            "diskSizeGb": str(BOOT_DISK_GB),
            "diskType": f"zones/{zone}/diskTypes/pd-balanced",
        },
    }


def _scheduling(spot: bool, max_life_s: float) -> dict[str, Any]:
    """GPU machines cannot live-migrate, so host maintenance ends them; they never restart on
    their own. ``maxRunDuration`` with ``instanceTerminationAction: DELETE`` deletes a machine
    whose controller died (a shutdown from inside only stops a GCP VM, disks kept): the cloud's
    own backstop next to the boot script's ("Limit the run time of a VM",
    cloud.google.com/compute/docs/instances/limit-vm-runtime)."""
    return {
        "onHostMaintenance": "TERMINATE",
        "automaticRestart": False,
        "provisioningModel": "SPOT" if spot else "STANDARD",
        "instanceTerminationAction": "DELETE",
        "maxRunDuration": {"seconds": str(max(30, math.ceil(max_life_s)))},
    }


def firewall_body(name: str, source_cidr: str, search_tag: str) -> dict[str, Any]:
    """The rule that lets the caller reach port 22 of the search's machines (by network tag)."""
    return {
        "name": name,
        "description": f"cherrypick search {search_tag}: SSH from the controller",
        "network": NETWORK,
        "direction": "INGRESS",
        "allowed": [{"IPProtocol": "tcp", "ports": ["22"]}],
        "sourceRanges": [source_cidr],
        "targetTags": [name],
    }


def instance_state(item: Mapping[str, Any]) -> InstanceState:
    """An existing instance's state (a deleted one is ``terminated``: the caller knows)."""
    return _STATES.get(str(item.get("status")), InstanceState.STOPPING)


def is_ready(item: Mapping[str, Any]) -> bool:
    """Running, with both addresses (the external one is what the controller connects to)."""
    interface, access = _addresses(item)
    running = instance_state(item) is InstanceState.RUNNING
    return running and bool(interface.get("networkIP") and access.get("natIP"))


def instance_of(item: Mapping[str, Any], ssh_user: str) -> Instance:
    """An instance resource as the provider interface reports it (id ``{zone}/{name}``)."""
    zone = str(item.get("zone", "")).rsplit("/", 1)[-1]
    item_labels = dict(item.get("labels", {}))
    interface, access = _addresses(item)
    return Instance(
        provider="gcp",
        instance_id=f"{zone}/{item['name']}",
        region=region_of(zone),
        node_rank=int(item_labels.get(TAG_NODE_RANK, "0")),
        internal_ip=str(interface.get("networkIP", "")),
        external_ip=access.get("natIP"),
        ssh_port=22,
        ssh_user=ssh_user,
        tags=item_labels,
        extra={"zone": zone, "status": item.get("status")},
    )


def _addresses(item: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """The first network interface and its first access config (empty when absent)."""
    interface = (item.get("networkInterfaces") or [{}])[0]
    return interface, (interface.get("accessConfigs") or [{}])[0]
