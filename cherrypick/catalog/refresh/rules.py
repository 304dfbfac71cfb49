"""What the catalog refresh knows beyond the facts: GPU names, machine shapes, links, networks.

Each rule carries its source in ``RULE_NOTES``, which the refresh writes into the header of the
provider's CSV, so a reader of a catalog sees where every column came from. The facts build and
the provider API refresh share these rules.
"""

from __future__ import annotations

import re

__all__ = [
    "EXCLUDED_ACCELERATORS",
    "GPU_KEYS",
    "RULE_NOTES",
    "SOURCE_NOTES",
    "azure_count",
    "azure_gpu",
    "gcp_fixed_accelerator",
    "gcp_n1_host",
    "interconnect",
    "network_gbps",
]

# Accelerator names of the facts files -> GPU keys of configs/gpus.yaml.
GPU_KEYS = {
    "K80": "K80",
    "M60": "M60",
    "P4": "P4",
    "P100": "P100",
    "T4": "T4",
    "T4g": "T4G",
    "V100": "V100",
    "V100-32GB": "V100-32GB",
    "A10": "A10",
    "A10G": "A10G",
    "L4": "L4",
    "L40S": "L40S",
    "A100": "A100",
    "A100-80GB": "A100-80GB",
    "H100": "H100",
    "H100-MEGA": "H100",  # GCP's name for the H100 of a3-megagpu: same GPU, faster network
    "H200": "H200",
    "B200": "B200",
}

# Accelerators left out, with the reason written into the catalog header.
EXCLUDED_ACCELERATORS = {
    "Virtex UltraScale (VU9P)": "FPGA (f1), not a GPU",
    "Virtex UltraScale+ (VU47P)": "FPGA (f2), not a GPU",
    "Inferentia": "AWS Inferentia (inf1), not a GPU",
    "Inferentia2": "AWS Inferentia2 (inf2), not a GPU",
    "Trainium": "AWS Trainium (trn1, trn1n), not a GPU",
    "Gaudi HL-205": "Habana Gaudi (dl1), not a GPU",
    "Qualcomm AI100": "Qualcomm AI 100 (dl2q), not a GPU",
    "Radeon Pro V520": "AMD Radeon Pro V520 (g4ad): a graphics GPU that neither CUDA nor "
    "PyTorch's ROCm builds target, so a training job cannot use it",
    "Radeon MI25": "AMD Radeon Instinct MI25 (Azure NVv4): 1/8 to 1 GPU partitions with 2-16 GiB "
    "and Windows-only guests (Azure NVv4-series docs), so no whole-GPU Linux training VM",
}

# Azure NCads H100 v5 carry an 'H100 NVL' (94 GB, PCIe), which the facts label 'H100'.
_AZURE_GPU = {"Standard_NC40ads_H100_v5": "H100-NVL", "Standard_NC80adis_H100_v5": "H100-NVL"}
# The facts give ND96isr_H100_v5 12 GPUs; Azure's ND H100 v5 docs give 8.
_AZURE_COUNT = {"Standard_ND96isr_H100_v5": 8}

# GCP machine types with built-in GPUs: (pattern, accelerator row name, count; None: group 1).
_GCP_FIXED = (
    (r"a2-highgpu-(\d+)g", "A100", None),
    (r"a2-megagpu-16g", "A100", 16),
    (r"a2-ultragpu-(\d+)g", "A100-80GB", None),
    (r"a3-highgpu-(\d+)g", "H100", None),
    (r"a3-edgegpu-8g(-nolssd)?", "H100", 8),
    (r"a3-megagpu-8g", "H100-MEGA", 8),
    (r"a3-ultragpu-8g(-nolssd)?", "H200", 8),
)
_G2_L4_COUNT = {4: 1, 8: 1, 12: 1, 16: 1, 32: 1, 24: 2, 48: 4, 96: 8}
_N1_GPUS = ("T4", "V100", "P100", "P4")
_N1_VCPUS_PER_GPU = 8

# First match wins; anything else with several GPUs talks over PCIe.
_LINKS = {
    "aws": ((r"p3(dn)?\.", "nvlink"), (r"p4de?\.|p5(e|en)?\.", "nvswitch")),
    "gcp": ((r"a[23]-", "nvswitch"), (r"n1-.*\+\d+xV100$", "nvlink")),
    "azure": ((r"Standard_ND96", "nvswitch"), (r"Standard_ND40rs_v2$", "nvlink")),
}


def _by_value(table: str) -> dict[str, float]:
    """Parse lines of 'value: name name ...' into {name: value}."""
    pairs = (line.split(":") for line in table.strip().splitlines())
    return {name: float(value) for value, names in pairs for name in names.split()}


# Documented VM network bandwidth, Gbit/s. AWS: NetworkInfo of EC2 DescribeInstanceTypes (moto
# 5.2.1 ships a copy) with "up to N" read as N; p3.*: the AWS P3 page.
_AWS_NETWORK = _by_value(
    """
    10: p3.2xlarge p3.8xlarge g5.xlarge g5.2xlarge g6.xlarge g6.2xlarge
    10: g5g.xlarge g5g.2xlarge g5g.4xlarge
    12: g5g.8xlarge
    20: g6e.xlarge g6e.2xlarge g6e.4xlarge
    25: p3.16xlarge g4dn.xlarge g4dn.2xlarge g4dn.4xlarge g5g.16xlarge g5g.metal
    25: g5.4xlarge g5.8xlarge g5.16xlarge g6.4xlarge g6.8xlarge g6.16xlarge
    25: g6e.8xlarge gr6.4xlarge gr6.8xlarge
    35: g6e.16xlarge
    40: g5.12xlarge g6.12xlarge
    50: g4dn.8xlarge g4dn.12xlarge g4dn.16xlarge g5.24xlarge g6.24xlarge
    100: g4dn.metal g5.48xlarge g6.48xlarge g6e.12xlarge p3dn.24xlarge
    200: g6e.24xlarge
    400: g6e.48xlarge p4d.24xlarge p4de.24xlarge
    3200: p5.48xlarge p5e.48xlarge p5en.48xlarge
    """
)
_AWS_DEFAULT_NETWORK = 10
# Azure: "Max Bandwidth" of the size pages; ND sizes: their InfiniBand fabric (NCCL uses it).
_AZURE_NETWORK = _by_value(
    """
    6: NV12s_v3
    8: NC4as_T4_v3 NC8as_T4_v3 NC16as_T4_v3
    12: NV24s_v3
    20: NC24ads_A100_v4
    24: NV48s_v3
    32: NC64as_T4_v3
    40: NC48ads_A100_v4 NC40ads_H100_v5 NV36ads_A10_v5
    80: NC96ads_A100_v4 NC80adis_H100_v5 NV36adms_A10_v5 NV72ads_A10_v5
    100: ND40rs_v2
    1600: ND96asr_v4 ND96amsr_A100_v4
    3200: ND96isr_H100_v5
    """
)
_AZURE_DEFAULT_NETWORK = 10
# GCP: per-type figures of "Networking and GPU machines"; others: min(family cap, 2 x vCPUs).
_GCP_NETWORK = _by_value(
    """
    600: a3-edgegpu-8g a3-edgegpu-8g-nolssd
    1000: a3-highgpu-8g
    1800: a3-megagpu-8g
    3600: a3-ultragpu-8g a3-ultragpu-8g-nolssd
    """
)
_GCP_CAP_DEFAULT = 100
_GCP_CAP = {"P100": 32, "P4": 32}
_GCP_GBPS_PER_VCPU = 2

# What the facts themselves leave out or get wrong, beyond what the build counts row by row.
SOURCE_NOTES = {
    "aws": (
        "not in the facts: types with an empty AcceleratorName (trn2.48xlarge, vt1.*); g6, g6e "
        "and gr6 have no eu-west-1 rows",
        "gpu: from AcceleratorName, not GpuInfo (p3dn: GpuInfo says 'V100' for its 32 GiB "
        "V100-32GB; p4de twins say 'A100' and 'A100-80GB')",
        "g5g: T4G GPUs on arm64 (Graviton2) hosts; a job needs arm64 builds",
        "gpu_memory_gib: AWS's GpuInfo gives usable memory (A10G and L4 22.35, L40S 44.7)",
    ),
    "gcp": (
        "price_per_hour = host row + accelerator row of the same zone and GPU count (GCP bills "
        "both); a zone needs both rows; spot likewise (empty if either spot is)",
        "accelerator prices as the source lists them, although some look odd: H100 x8 33.61 in "
        "us-central1, 78.37 in us-east4, 101.88 in europe-west4; H100-MEGA x8 82.75 in the US; "
        "H200 x8 74.49 in the US, 36.60 in europe-west4; A100 x1 1.61 in europe-west4, 2.93 in "
        "us-central1; the flags below drop the us-central1 A3 High and Edge rows: Google's "
        "billing catalog prices a3-highgpu-8g at 88.49 there and 88.56 in us-east4 "
        "(Cyclenerd/google-cloud-pricing-cost-calculator pricing.yml @ 0166a59e, generated "
        "2025-03-06 from the Cloud Billing Catalog API), not 43.07",
        "H100-MEGA (the accelerator row of a3-megagpu-8g) is an H100 80GB",
        "n1 instance types are named <host>+<count>x<GPU>, e.g. n1-standard-8+1xT4",
    ),
    "azure": (
        "not in the facts: westeurope (the v6 catalog lists US regions only); types with an "
        "empty AcceleratorName (NC*ads_A10_v4, NCC40ads_H100_v5, ND40s_v3, NG*_V620)",
        "*_Promo (K80) rows list no spot price",
        "gpu_memory_gib: the catalog gives none for Azure: the configs/gpus.yaml figure",
    ),
}

RULE_NOTES = {
    "aws": (
        "network_gbps: AWS EC2 DescribeInstanceTypes NetworkInfo.NetworkPerformance (copy shipped "
        "in moto 5.2.1, ec2/resources/instance_types.json.gz); 'Up to N Gigabit' is recorded as N "
        "(burst; like Azure's and GCP's published maxima); p4d/p4de/p5*: the EFA total; p3.*: AWS "
        "P3 page (up to 10 / 10 / 25 Gbit/s); unknown types: 10",
        "interconnect: p3.8xlarge/16xlarge and p3dn NVLink (V100 hybrid cube mesh); p4d, p4de, "
        "p5, p5e, p5en NVSwitch; g* PCIe; any single-GPU VM pcie",
    ),
    "gcp": (
        "network_gbps: a3 8-GPU types from "
        "cloud.google.com/compute/docs/gpus/gpu-network-bandwidth (A3 Ultra 3600, Mega 1800, "
        "High 1000, Edge 600); other types: that page gives only a per-family maximum (A2, G2, "
        "A3 with 1-4 GPUs, N1+T4/V100: 100; N1+P100/P4: 32), so we record "
        "min(family maximum, 2 Gbit/s per vCPU), Compute Engine's default per-vCPU egress rate",
        "interconnect: a2/a3 NVSwitch (HGX baseboards; smaller shapes are slices of one); "
        "n1 + 2-8 V100 NVLink ('NVLink ring' in GCP's GPU table); g2 and n1 + T4/P100/P4 PCIe; "
        "any single-GPU VM pcie",
    ),
    "azure": (
        "network_gbps: 'Max Bandwidth (Mbps)' of the Azure size pages (MicrosoftDocs/azure-docs "
        "articles/virtual-machines/sizes/gpu-accelerated); ND sizes: their InfiniBand fabric "
        "(NDv2 100 EDR, ND A100 v4 and NDm A100 v4 8x200 HDR, ND H100 v5 8x400 NDR); NC-series "
        "(K80) and NCv3 publish no figure: 10",
        "interconnect: ND96* NVSwitch (HGX A100/H100), ND40rs_v2 NVLink (8 NVLink V100); NC*, NV* "
        "PCIe; any single-GPU VM pcie",
    ),
}


def azure_gpu(instance_type: str, accelerator: str) -> str:
    return _AZURE_GPU.get(instance_type, accelerator)


def azure_count(instance_type: str, count: int) -> int:
    return _AZURE_COUNT.get(instance_type, count)


def gcp_fixed_accelerator(machine_type: str) -> tuple[str, int] | None:
    """(accelerator row name, count) of a GCP type with built-in GPUs; None for n1 hosts."""
    for pattern, accelerator, count in _GCP_FIXED:
        match = re.fullmatch(pattern, machine_type)
        if match:
            return accelerator, count if count is not None else int(match.group(1))
    g2 = re.fullmatch(r"g2-standard-(\d+)", machine_type)
    if g2 and int(g2.group(1)) in _G2_L4_COUNT:
        return "L4", _G2_L4_COUNT[int(g2.group(1))]
    if machine_type.startswith("n1-"):
        return None
    raise KeyError(machine_type)


def gcp_n1_host(accelerator: str, count: int) -> str | None:
    """The one N1 host we pair with ``count`` attachable GPUs: 8 vCPUs and 30 GB per GPU."""
    return f"n1-standard-{_N1_VCPUS_PER_GPU * count}" if accelerator in _N1_GPUS else None


def interconnect(provider: str, instance_type: str, gpus_per_node: int) -> str:
    if gpus_per_node == 1:
        return "pcie"
    for pattern, link in _LINKS[provider]:
        if re.match(pattern, instance_type):
            return link
    return "pcie"


def network_gbps(provider: str, instance_type: str, vcpus: int, accelerator: str) -> float:
    if provider == "aws":
        return _AWS_NETWORK.get(instance_type, _AWS_DEFAULT_NETWORK)
    if provider == "azure":
        return _AZURE_NETWORK.get(instance_type.removeprefix("Standard_"), _AZURE_DEFAULT_NETWORK)
    machine = instance_type.split("+")[0]
    cap = _GCP_CAP.get(accelerator, _GCP_CAP_DEFAULT)
    return _GCP_NETWORK.get(machine, min(cap, _GCP_GBPS_PER_VCPU * vcpus))
