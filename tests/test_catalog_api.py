"""The catalog refresh from the providers' APIs, on recorded answers (``tests/fixtures/catalog``).

Each fixture is shaped as its API documents its answers and carries the bundled catalog's prices
and zones for a few offerings, so a refresh from it must reproduce those rows of the bundled
catalog cell for cell. The SDKs are real: botocore's Stubber behind boto3 clients (it checks
every call and answer against the service model), googleapiclient's bundled discovery documents
over ``HttpMockSequence``, azure-mgmt-compute over a scripted HTTP transport.
"""

from __future__ import annotations

import datetime
import io
import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
import urllib3
from botocore.stub import Stubber

from cherrypick.catalog.refresh import refresh_from_api
from cherrypick.catalog.refresh.aws import AwsClients
from cherrypick.catalog.refresh.azure import AzureClients, prices_url, sku_lister
from cherrypick.catalog.refresh.gcp import COMPUTE_SERVICE, GcpClients
from cherrypick.catalog.refresh.output import catalog_rows
from cherrypick.errors import CherrypickError

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "catalog"
RETRIEVED = datetime.date(2026, 11, 21)


def _fixture(*parts: str) -> Any:
    return json.loads(FIXTURES.joinpath(*parts).read_text(encoding="utf-8"))


def _bundled(provider: str) -> dict[tuple[str, str], dict[str, str]]:
    return catalog_rows((REPO / "configs" / "catalogs" / f"{provider}.csv").read_text("utf-8"))


# -- AWS ----------------------------------------------------------------------------------------

NOW = datetime.datetime(2026, 11, 21, 12, 0, tzinfo=datetime.timezone.utc)
AWS_REGIONS = ("us-east-1", "us-west-2")
# The GPU types offered in a zone (g4ad's AMD GPU is left out, p5.48xlarge is offered nowhere).
SPOT_ASKED = {"us-east-1": ["g5.xlarge", "p4d.24xlarge"], "us-west-2": ["g4dn.12xlarge"]}
_FAKE_KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
_PRICE_FILTERS = {
    "operatingSystem": "Linux",
    "tenancy": "Shared",
    "preInstalledSw": "NA",
    "capacitystatus": "Used",
    "operation": "RunInstances",
}


def _paged(stub: Stubber, method: str, pages: list[dict[str, Any]], params: dict[str, Any]) -> None:
    token = None
    for page in pages:
        stub.add_response(method, page, {**params, **({"NextToken": token} if token else {})})
        token = page.get("NextToken")


def _price_pages(region: str, stub: Stubber) -> None:
    filters = [{"Type": "TERM_MATCH", "Field": "regionCode", "Value": region}] + [
        {"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in _PRICE_FILTERS.items()
    ]
    pages = [
        {**page, "PriceList": [json.dumps(p) for p in page["PriceList"]]}  # JSON strings, as sent
        for page in _fixture("aws", f"{region}.json")["pricing.get_products"]
    ]
    _paged(stub, "get_products", pages, {"ServiceCode": "AmazonEC2", "Filters": filters})


def _ec2_stub(region: str, stack: ExitStack) -> Any:
    answers = _fixture("aws", f"{region}.json")
    client = boto3.client("ec2", region_name=region, **_FAKE_KEYS)
    stub = stack.enter_context(Stubber(client))
    _paged(stub, "describe_instance_types", answers["ec2.describe_instance_types"], {})
    offerings = answers["ec2.describe_instance_type_offerings"]
    _paged(
        stub,
        "describe_instance_type_offerings",
        offerings,
        {"LocationType": "availability-zone-id"},
    )
    stub.add_response("describe_availability_zones", answers["ec2.describe_availability_zones"], {})
    history = answers["ec2.describe_spot_price_history"]
    for page in history:
        for entry in page["SpotPriceHistory"]:
            entry["Timestamp"] = datetime.datetime.fromisoformat(
                entry["Timestamp"].replace("Z", "+00:00")
            )
    params = {
        "InstanceTypes": SPOT_ASKED[region],
        "ProductDescriptions": ["Linux/UNIX"],
        "StartTime": NOW,
    }
    _paged(stub, "describe_spot_price_history", history, params)
    return client


@pytest.fixture
def aws_clients() -> Iterator[AwsClients]:
    with ExitStack() as stack:
        pricing = boto3.client("pricing", region_name="us-east-1", **_FAKE_KEYS)
        price_stub = stack.enter_context(Stubber(pricing))
        ec2 = {}
        for region in AWS_REGIONS:
            _price_pages(region, price_stub)
            ec2[region] = _ec2_stub(region, stack)
        yield AwsClients(pricing=pricing, ec2=ec2.__getitem__, now=lambda: NOW)
        price_stub.assert_no_pending_responses()


def test_aws_refresh_reproduces_the_bundled_rows(tmp_path: Path, aws_clients: AwsClients) -> None:
    result = refresh_from_api(
        "aws", tmp_path, clients=aws_clients, regions=AWS_REGIONS, retrieved=RETRIEVED
    )
    produced, bundled = catalog_rows(result.text), _bundled("aws")
    samples = [
        ("us-east-1", "g5.xlarge"),
        ("us-east-1", "p4d.24xlarge"),
        ("us-west-2", "g4dn.12xlarge"),
    ]
    assert sorted(produced) == samples
    for key in samples:
        assert produced[key] == bundled[key], key
    assert produced[("us-east-1", "p4d.24xlarge")]["spot_price_per_hour"] == "5.0933"  # latest
    assert result.text.startswith("# source: AWS Price List Query API")
    assert (
        "# retrieved: 2026-11-21\n# refresh: cherrypick catalog refresh --provider aws"
        in result.text
    )
    assert "left out: AMD Radeon Pro V520 (g4ad)" in result.text
    assert "left out: p5.48xlarge us-east-1: priced but offered in no zone" in result.text
    assert result.flags == ()


def test_aws_api_error_is_one_line(tmp_path: Path) -> None:
    ec2 = boto3.client("ec2", region_name="us-east-1", **_FAKE_KEYS)
    with Stubber(ec2) as stub:
        stub.add_client_error("describe_instance_types", "UnauthorizedOperation", "not allowed")
        clients = AwsClients(pricing=None, ec2=lambda region: ec2)
        with pytest.raises(
            CherrypickError, match=r"^aws refresh: .*UnauthorizedOperation"
        ) as caught:
            refresh_from_api("aws", tmp_path, clients=clients, regions=["us-east-1"])
    assert "\n" not in str(caught.value) and not (tmp_path / "aws.csv").exists()


# -- GCP ----------------------------------------------------------------------------------------


def _gcp_clients() -> GcpClients:
    from googleapiclient.discovery import build
    from googleapiclient.http import HttpMockSequence

    answers = _fixture("gcp", "answers.json")

    def http(*keys: str) -> HttpMockSequence:
        pages = [page for key in keys for page in answers[key]]
        return HttpMockSequence([({"status": "200"}, json.dumps(page)) for page in pages])

    billing_http = http("cloudbilling.services.skus.list")
    billing = build("cloudbilling", "v1", http=billing_http, static_discovery=True)
    lists = ("compute.machineTypes.aggregatedList", "compute.acceleratorTypes.aggregatedList")
    compute = build("compute", "v1", http=http(*lists), static_discovery=True)
    return GcpClients(billing=billing, compute=compute, project="test-project")


def test_gcp_refresh_reproduces_the_bundled_rows(tmp_path: Path) -> None:
    regions = ("us-central1", "us-east4")
    result = refresh_from_api(
        "gcp", tmp_path, clients=_gcp_clients(), regions=regions, retrieved=RETRIEVED
    )
    produced, bundled = catalog_rows(result.text), _bundled("gcp")
    samples = [
        ("us-central1", "a2-highgpu-1g"),
        ("us-central1", "g2-standard-8"),
        ("us-central1", "n1-standard-8+1xT4"),
        ("us-east4", "a3-highgpu-8g"),
    ]
    for key in samples:
        assert produced[key] == bundled[key], key
    # us-central1's A3 High, which the facts price at 43.07 (dropped from the bundled catalog),
    # is priced by the region's own H100 SKU; the decoy SKU of another description is ignored.
    assert sorted(produced) == sorted([*samples, ("us-central1", "a3-highgpu-8g")])
    a3 = produced[("us-central1", "a3-highgpu-8g")]
    assert (a3["price_per_hour"], a3["zones"]) == (
        "87.83247",
        "us-central1-a us-central1-b us-central1-c",
    )
    assert result.flags == ()
    assert f"{COMPUTE_SERVICE}: Compute Engine" in result.text.splitlines()[0]


# -- Azure --------------------------------------------------------------------------------------


class _Token:
    """A credential that hands out a token nobody checks (the transport is scripted)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken("fake-token", int(time.time()) + 3600)


class _ScriptedArm(requests.adapters.BaseAdapter):
    """Answers Resource SKUs - List from the fixture, by the region in its ``$filter``."""

    def __init__(self, answers: dict[str, Any]) -> None:
        super().__init__()
        self.answers = answers
        self.urls: list[str] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        url = str(request.url)
        self.urls.append(url)
        query = requests.utils.unquote(url)
        region = next(r for r in self.answers if f"location eq '{r}'" in query)
        body = json.dumps(self.answers[region]).encode()
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        raw = urllib3.HTTPResponse(io.BytesIO(body), headers, 200, preload_content=False)
        return requests.adapters.HTTPAdapter().build_response(request, raw)

    def close(self) -> None:
        pass


def _azure_clients(fetched: list[str], arm: _ScriptedArm) -> AzureClients:
    from azure.core.pipeline.transport import RequestsTransport
    from azure.mgmt.compute import ComputeManagementClient

    session = requests.Session()
    session.mount("https://", arm)
    transport = RequestsTransport(session=session, session_owner=False)
    compute = ComputeManagementClient(
        _Token(), "00000000-0000-0000-0000-000000000000", transport=transport
    )
    pages: dict[str, Any] = {}
    for region, (first, second) in _fixture("azure", "answers.json")["retail_prices"].items():
        pages[prices_url(region)], pages[first["NextPageLink"]] = first, second

    def fetch(url: str) -> Any:
        fetched.append(url)
        return pages[url]

    return AzureClients(fetch=fetch, resource_skus=sku_lister(compute))


def test_azure_refresh_reproduces_the_bundled_rows_and_adds_zones(tmp_path: Path) -> None:
    fetched: list[str] = []
    arm = _ScriptedArm(_fixture("azure", "answers.json")["resource_skus"])
    clients = _azure_clients(fetched, arm)
    result = refresh_from_api(
        "azure", tmp_path, clients=clients, regions=["eastus", "westus2"], retrieved=RETRIEVED
    )
    produced, bundled = catalog_rows(result.text), _bundled("azure")
    zones = {
        ("eastus", "Standard_NC4as_T4_v3"): "1 2 3",
        ("eastus", "Standard_NC24ads_A100_v4"): "1 2",  # zone 3 restricted for the subscription
        ("eastus", "Standard_ND96isr_H100_v5"): "1 2 3",
        ("westus2", "Standard_NC4as_T4_v3"): "",  # the SKU lists no zones there
        ("westus2", "Standard_NC24ads_A100_v4"): "1 2 3",
    }
    assert sorted(produced) == sorted(zones)
    for key, zoned in zones.items():
        assert {**produced[key], "zones": ""} == bundled[key], key  # the facts have no zones
        assert produced[key]["zones"] == zoned, key
    assert "left out: Standard_NC6s_v3 eastus: not available for this subscription" in result.text
    assert "left out: Standard_NC6 westus2: priced but not launchable there" in result.text
    assert "Standard_ND96isr_H100_v5 eastus: spot 98.32 >= on-demand: left empty" in result.text
    assert len(fetched) == 4 and fetched[0].startswith(
        "https://prices.azure.com/api/retail/prices?"
    )
    assert all("Microsoft.Compute/skus" in url for url in arm.urls) and len(arm.urls) == 2


def test_refresh_regions_default_to_those_of_the_file_it_replaces(tmp_path: Path) -> None:
    previous = (
        "# old\nprovider,region,instance_type,price_per_hour\nazure,westus2,Standard_NC6,0.9\n"
    )
    (tmp_path / "azure.csv").write_text(previous, encoding="utf-8")
    fetched: list[str] = []
    arm = _ScriptedArm(_fixture("azure", "answers.json")["resource_skus"])
    result = refresh_from_api("azure", tmp_path, clients=_azure_clients(fetched, arm))
    assert {region for region, _ in catalog_rows(result.text)} == {"westus2"}
    assert "removed: azure westus2 Standard_NC6 (?x ?, $0.9/h)" in result.changes
    assert f"# retrieved: {datetime.date.today().isoformat()}" in result.text
