"""Hyperliquid open interest from its S3 archive (`s3://hyperliquid-archive/asset_ctxs/<day>.csv.lz4`,
requester pays) through the real CLI, against a real S3-compatible server process on loopback
(moto's server mode), seeded with day files the emulator's market model makes
(`emulator/hyperliquid/archive.py`), one day missing as in the real archive. The rows are loaded
back through NautilusTrader's ParquetDataCatalog and compared with what the files say."""

import json
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest

from emulator.hyperliquid.archive import day_file, day_rows
from emulator.market import Market
from tests.harness import ROOT, read_catalog, start_emulator, wait_for

MS = 1_000_000
DAY_MS = 86_400_000
DAYS = [1_790_812_800_000 + i * DAY_MS for i in range(3)]  # 2026-10-01..03; the archive lacks the 2nd
MISSING = DAYS[1]
IID = "BTC-USD-PERP.HYPERLIQUID"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto's S3 server on loopback, the bucket requester-pays, two of the three days in it."""
    tmp = tmp_path_factory.mktemp("s3")
    port = _free_port()
    log = open(tmp / "moto.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    env = {"AWS_ACCESS_KEY_ID": "test-key", "AWS_SECRET_ACCESS_KEY": "test-secret", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL_S3": url}
    client = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="test-key",
                          aws_secret_access_key="test-secret")

    def up() -> bool:
        try:
            client.list_buckets()
            return True
        except Exception:  # noqa: BLE001 - not listening yet
            return False

    wait_for(up, 30, what="moto's S3 server")
    client.create_bucket(Bucket="hyperliquid-archive")
    client.put_bucket_request_payment(Bucket="hyperliquid-archive", RequestPaymentConfiguration={"Payer": "Requester"})
    for day in DAYS:
        if day != MISSING:
            key = f"asset_ctxs/{_day(day).replace('-', '')}.csv.lz4"
            client.put_object(Bucket="hyperliquid-archive", Key=key, Body=day_file(Market(7), day, ("BTC", "ETH")))
    yield env
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("archive-emu")
    proc, _, _ = start_emulator(tmp, "hyperliquid")
    yield tmp / "emulator.json"
    proc.terminate()
    proc.wait(10)


def derivs(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)


def clean_env(tmp: Path, **aws: str) -> dict:
    """This environment without any AWS setting (no ~/.aws either: HOME is empty), plus `aws`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {**env, "HOME": str(tmp), "AWS_CONFIG_FILE": str(tmp / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "none"),
            "AWS_EC2_METADATA_DISABLED": "true", **aws}  # no instance-metadata lookup off loopback


def test_archive_rows_stored_as_the_files_say(s3, emu, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    env = clean_env(tmp_path, **s3)
    args = ["history", "oi", "BTC", "-v", "hyperliquid", "--since", _day(DAYS[0]), "--until", _day(DAYS[-1] + DAY_MS),
            "--emulator", str(emu), "--catalog", str(catalog), "--json"]
    done = derivs(env, *args)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    expected = {t: (oi, oi * px) for day in DAYS if day != MISSING for t, oi, px in day_rows(Market(7), day, "BTC")}
    assert summary["fetched"] == summary["written"] == len(expected) == 2 * 1440
    assert len(summary["venue_holes"]) == 1 and summary["venue_holes"][0][1] - summary["venue_holes"][0][0] > DAY_MS * MS
    loaded = read_catalog(catalog)
    stored = [r for r in loaded["open_interest"] if r[0] == IID]
    assert [r[1] // MS for r in stored] == sorted(expected)  # every minute of the two days, once
    assert all((r[3], r[4]) == expected[r[1] // MS] for r in stored)
    assert {(r[2], r[3]) for r in loaded["open_interest_source"] if r[0] == IID} == {("archive", 60)}
    assert any("--period 5m does not apply" in n for n in summary["notes"])  # the archive has one cadence
    # again: the stored days are not downloaded again (the missing one is asked for once more)
    again = json.loads(derivs(env, *args).stdout.splitlines()[-1])
    assert (again["already_stored"], again["fetched"], again["written"]) == (len(expected), 0, 0)


def test_without_credentials_it_says_what_is_missing(s3, emu, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    env = clean_env(tmp_path, AWS_ENDPOINT_URL_S3=s3["AWS_ENDPOINT_URL_S3"])  # a server, but no credentials
    done = derivs(env, "history", "oi", "BTC", "-v", "hyperliquid", "--since", _day(DAYS[0]), "--emulator", str(emu),
                  "--catalog", str(catalog))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "s3://hyperliquid-archive/asset_ctxs/" in done.stderr and "requester pays" in done.stderr
    assert "needs AWS credentials" in done.stderr and "AWS_ACCESS_KEY_ID" in done.stderr
    assert not list(catalog.rglob("*.parquet"))
