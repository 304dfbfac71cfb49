"""What one trial's resource group holds, as Azure Resource Manager request bodies, and how its
names and states read.

Bodies are plain JSON in ARM's REST shape (``{"location", "tags", "properties": {...}}``): the
SDK sends a mapping as it is, in every SDK generation the package supports, so the request
is exactly what is written here (and what the tests assert).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from cherrypick.providers._cloud import resource_name
from cherrypick.providers.base import InstanceState

from cherrypick.errors import InputError

__all__ = [
    "DEFAULT_IMAGE",
    "NSG_NAME",
    "SUBNET_NAME",
    "VNET_NAME",
    "group_name",
    "image_reference",
    "instance_id",
    "instance_state",
    "network_interface",
    "network_security_group",
    "parse_instance_id",
    "power_state",
    "public_ip",
    "virtual_machine",
    "virtual_network",
    "vm_name",
]

#: Microsoft's Ubuntu 22.04 HPC image: NVIDIA driver, CUDA, NCCL and InfiniBand drivers already
#: installed ("Azure HPC VM images", learn.microsoft.com/azure/virtual-machines/configure#vm-images;
#: github.com/Azure/azhpc-images), so a trial does not spend its first minutes installing them.
DEFAULT_IMAGE = "microsoft-dsvm:ubuntu-hpc:2204:latest"
VNET_NAME = "cherrypick-vnet"
SUBNET_NAME = "default"
NSG_NAME = "cherrypick-ssh"
#: Azure's limits on names: resource groups 90 characters, Linux VMs (and their host names) 64.
GROUP_NAME_LIMIT = 90
VM_NAME_LIMIT = 64
#: Every VM size takes Standard SSD disks (Premium needs an "s" size).
OS_DISK_TYPE = "StandardSSD_LRS"


def group_name(cluster_name: str) -> str:
    """The trial's resource group: deleting it deletes everything the trial made."""
    return resource_name(cluster_name, "rg", GROUP_NAME_LIMIT)


def vm_name(cluster_name: str, rank: int) -> str:
    return resource_name(cluster_name, str(rank), VM_NAME_LIMIT)


def instance_id(group: str, vm: str) -> str:
    """A machine's id for the interface: ``{resource group}/{VM}`` (the subscription is the
    provider's own), enough to query it and to delete its group."""
    return f"{group}/{vm}"


def parse_instance_id(value: str) -> tuple[str, str] | None:
    """(resource group, VM) of an id, or None for an id this provider never made."""
    group, _, vm = value.partition("/")
    return (group, vm) if group and vm and "/" not in vm else None


def image_reference(image: str | None) -> dict[str, str]:
    """``clouds.azure.image`` as an ARM image reference: a marketplace URN
    (``publisher:offer:sku:version``) or an image's resource id (``/subscriptions/...``)."""
    chosen = image or DEFAULT_IMAGE
    if chosen.startswith("/"):
        return {"id": chosen}
    parts = chosen.split(":")
    if len(parts) != 4 or not all(parts):
        raise InputError(
            f"clouds.azure.image: {chosen!r} is neither a marketplace URN"
            " (publisher:offer:sku:version) nor an image resource id (/subscriptions/...)"
        )
    return dict(zip(("publisher", "offer", "sku", "version"), parts, strict=True))


def network_security_group(location: str, tags: Mapping[str, str], ssh_cidr: str) -> dict[str, Any]:
    """SSH in from ``ssh_cidr`` only. Traffic between the trial's machines needs no rule:
    Azure's default rule ``AllowVnetInBound`` lets the virtual network in."""
    rule = {
        "name": "ssh",
        "properties": {
            "protocol": "Tcp",
            "sourceAddressPrefix": ssh_cidr,
            "sourcePortRange": "*",
            "destinationAddressPrefix": "*",
            "destinationPortRange": "22",
            "access": "Allow",
            "direction": "Inbound",
            "priority": 1000,
        },
    }
    return {"location": location, "tags": dict(tags), "properties": {"securityRules": [rule]}}


def virtual_network(location: str, tags: Mapping[str, str], nsg_id: str) -> dict[str, Any]:
    """One subnet, behind the SSH security group."""
    subnet = {
        "name": SUBNET_NAME,
        "properties": {"addressPrefix": "10.0.0.0/24", "networkSecurityGroup": {"id": nsg_id}},
    }
    return {
        "location": location,
        "tags": dict(tags),
        "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}, "subnets": [subnet]},
    }


def public_ip(location: str, tags: Mapping[str, str], zone: str | None) -> dict[str, Any]:
    """A static Standard address (Basic public addresses are retired), in the VM's zone."""
    body: dict[str, Any] = {
        "location": location,
        "tags": dict(tags),
        "sku": {"name": "Standard"},
        "properties": {"publicIPAllocationMethod": "Static", "publicIPAddressVersion": "IPv4"},
    }
    return _zoned(body, zone)


def network_interface(
    location: str, tags: Mapping[str, str], subnet_id: str, ip_id: str
) -> dict[str, Any]:
    config = {
        "name": "ipconfig",
        "properties": {
            "subnet": {"id": subnet_id},
            "privateIPAllocationMethod": "Dynamic",
            "publicIPAddress": {"id": ip_id},
        },
    }
    return {"location": location, "tags": dict(tags), "properties": {"ipConfigurations": [config]}}


def virtual_machine(
    *,
    location: str,
    zone: str | None,
    size: str,
    name: str,
    tags: Mapping[str, str],
    user: str,
    public_key: str,
    boot_script: str,
    image: Mapping[str, str],
    nic_id: str,
    spot: bool,
) -> dict[str, Any]:
    """A Linux VM reached only by ``public_key`` as ``user``, running ``boot_script`` at boot
    (cloud-init takes ``customData`` as a script). Disk and NIC go with the VM; a spot VM is
    deleted when evicted, not kept stopped (a stopped VM still bills its disk)."""
    properties: dict[str, Any] = {
        "hardwareProfile": {"vmSize": size},
        "storageProfile": {
            "imageReference": dict(image),
            "osDisk": {
                "createOption": "FromImage",
                "deleteOption": "Delete",
                "managedDisk": {"storageAccountType": OS_DISK_TYPE},
            },
        },
        "osProfile": _os_profile(name, user, public_key, boot_script),
        "networkProfile": {
            "networkInterfaces": [
                {"id": nic_id, "properties": {"primary": True, "deleteOption": "Delete"}}
            ]
        },
    }
    if spot:
        properties |= {"priority": "Spot", "evictionPolicy": "Delete"}
    body = {"location": location, "tags": dict(tags), "properties": properties}
    return _zoned(body, zone)


def _os_profile(name: str, user: str, public_key: str, boot_script: str) -> dict[str, Any]:
    key = {"path": f"/home/{user}/.ssh/authorized_keys", "keyData": public_key}
    return {
        "computerName": name,
        "adminUsername": user,
        "customData": base64.b64encode(boot_script.encode()).decode("ascii"),
        "linuxConfiguration": {"disablePasswordAuthentication": True, "ssh": {"publicKeys": [key]}},
    }


def _zoned(body: dict[str, Any], zone: str | None) -> dict[str, Any]:
    return body if zone is None else body | {"zones": [zone]}


#: Azure's power states (``PowerState/<state>`` in a VM's instance view) as the interface's. A
#: stopped or deallocated VM still exists (and bills its disk): it is not gone.
_POWER_STATES = {
    "running": InstanceState.RUNNING,
    "starting": InstanceState.PENDING,
    "stopping": InstanceState.STOPPING,
    "stopped": InstanceState.STOPPING,
    "deallocating": InstanceState.STOPPING,
    "deallocated": InstanceState.STOPPING,
}


def instance_state(vm: Any) -> InstanceState:
    """A VM's state from the SDK's ``VirtualMachine`` read with its instance view: one being
    deleted is stopping; one with no power state yet is still being created."""
    if (vm.provisioning_state or "").lower() == "deleting":
        return InstanceState.STOPPING
    power = power_state(vm)
    return (
        InstanceState.PENDING if power is None else _POWER_STATES.get(power, InstanceState.PENDING)
    )


def power_state(vm: Any) -> str | None:
    view = vm.instance_view
    statuses = (view.statuses if view is not None else None) or []
    codes = [s.code or "" for s in statuses]
    return next((c.split("/", 1)[1].lower() for c in codes if c.startswith("PowerState/")), None)
