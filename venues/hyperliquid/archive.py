"""Hyperliquid's open-interest history: its public S3 archive of asset contexts, the only place it
exists (the API serves current values only).

Hyperliquid's docs ("Historical data", hyperliquid.gitbook.io/hyperliquid-docs/historical-data):
"Format: `s3://hyperliquid-archive/asset_ctxs/[date].csv.lz4`", uploaded "approximately once a
month. There is no guarantee of timely updates and data may be missing", and "the requester of
the data must pay for transfer costs" (requester pays: an AWS account's credentials are needed).
What the files hold, from public code and notes of users who read them (the docs say no more):
`[date]` is YYYYMMDD ("asset_ctxs/20230520.csv.lz4" the first key listed), LZ4 *frame* format,
one CSV per day with every coin, one header on all of them: "All 1,168 files found across
2023-05-20..2026-07-31 share one 12-column header: `time,coin,funding,open_interest,prev_day_px,
day_ntl_vlm,premium,oracle_px,mark_px,mid_px,impact_bid_px,impact_ask_px`", "missing:
20260708.csv.lz4", BTC "Exact-minute rows: 1,657,605; off-grid rows: 1,242" (one row per coin per
minute, `time` ISO-8601 UTC such as 2023-05-20T02:50:04Z), optional prices "may be empty string or
'null'".

Stored rows: `source="archive"`, `period_s=60` (the archive's cadence), `ts_event` = the row's
`time` as written, `open_interest` in coin units as published (as the live poll), USD value =
`open_interest` x `mark_px` of the same row (as the live poll: x `markPx`).

S3 is read with boto3 (its own credential chain: environment, ~/.aws, SSO, instance roles; an
`AWS_ENDPOINT_URL_S3` points it at another S3-compatible server) and `lz4.frame`; both are the
optional extra `derivs-mesh[hyperliquid-archive]`. What is missing (the libraries, credentials,
access) is said in one sentence, never as a traceback.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import csv

from messages.timeunits import NS

BUCKET = "hyperliquid-archive"
PERIOD_S = 60  # one row per coin per minute
DAY_MS = 86_400_000
FIRST_DAY_MS = 1_684_540_800_000  # 2023-05-20: the archive's first file
COLUMNS = {"time": pa.string(), "coin": pa.string(), "open_interest": pa.float64(), "mark_px": pa.float64()}
WHERE = f"s3://{BUCKET}/asset_ctxs/ (requester pays: the AWS account that downloads pays the transfer)"


class ArchiveUnavailable(Exception):
    """The archive cannot be read here: what is missing, and why it is needed."""


def key_of(day_ms: int) -> str:
    """S3 key of one day's file: asset_ctxs/20230520.csv.lz4."""
    return f"asset_ctxs/{datetime.fromtimestamp(day_ms / 1000, UTC):%Y%m%d}.csv.lz4"


@dataclass(frozen=True)
class ArchiveRow:
    ts_ns: int
    open_interest: float
    mark_px: float


def parse_day(data: bytes, coin: str) -> list[ArchiveRow]:
    """One day's file (LZ4 frame of the CSV) -> that coin's rows, oldest first."""
    import lz4.frame

    table = csv.read_csv(io.BytesIO(lz4.frame.decompress(data)),
                         convert_options=csv.ConvertOptions(column_types=COLUMNS, include_columns=list(COLUMNS),
                                                            null_values=["", "null"]))
    table = table.filter(pc.equal(table["coin"], coin))
    rows = [ArchiveRow(_ns(t), oi, px) for t, oi, px in zip(table["time"].to_pylist(), table["open_interest"].to_pylist(),
                                                               table["mark_px"].to_pylist(), strict=True)
            if oi is not None and px is not None]
    return sorted(rows, key=lambda r: r.ts_ns)


def _ns(text: str) -> int:
    """ISO-8601 (with T or a space, Z or no zone = UTC, fractions up to ns) -> UNIX ns."""
    head, _, frac = text.rstrip("Z").partition(".")
    parsed = datetime.fromisoformat(head)
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    digits = "".join(c for c in frac if c.isdigit())[:9]
    return int(parsed.timestamp()) * NS + (int(digits.ljust(9, "0")) if digits else 0)


class AssetCtxsArchive:
    """Days of `s3://hyperliquid-archive/asset_ctxs/`, read with boto3 (in threads: it blocks)."""

    def __init__(self) -> None:
        self.client = _client()

    async def day(self, day_ms: int, coin: str) -> list[ArchiveRow] | None:
        """That coin's rows of one day; None if the archive has no file for the day."""
        data = await asyncio.to_thread(self._get, key_of(day_ms))
        return None if data is None else await asyncio.to_thread(parse_day, data, coin)

    def _get(self, key: str) -> bytes | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.client.get_object(Bucket=BUCKET, Key=key, RequestPayer="requester")
            return answer["Body"].read()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404"):
                return None
            raise ArchiveUnavailable(f"s3://{BUCKET}/{key}: {code or 'error'}: "
                                     f"{exc.response.get('Error', {}).get('Message', '')} ({_hint(code)})") from None
        except BotoCoreError as exc:
            raise ArchiveUnavailable(f"s3://{BUCKET}/{key}: {exc}") from None


def _hint(code: str) -> str:
    if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return "the bucket is requester pays: the AWS credentials must be valid and allowed to pay for the transfer"
    return "S3 refused the request"


def _client() -> Any:
    """A boto3 S3 client with credentials; ArchiveUnavailable saying what is missing otherwise."""
    try:
        import boto3
        import lz4.frame  # noqa: F401
    except ImportError as exc:
        raise ArchiveUnavailable(
            f"Hyperliquid's open-interest history is only in its S3 archive {WHERE}; reading it needs boto3 and lz4, "
            f"which are not installed ({exc.name}): pip install 'derivs-mesh[hyperliquid-archive]'") from None
    session = boto3.Session()
    if session.get_credentials() is None:
        raise ArchiveUnavailable(
            f"Hyperliquid's open-interest history is only in its S3 archive {WHERE}, so it needs AWS credentials, and "
            f"none are configured: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, ~/.aws/credentials)")
    return session.client("s3", region_name=session.region_name or "us-east-1")


def days_of(start_ms: int, end_ms: int) -> list[int]:
    """UTC midnights of the archive's days that meet [start_ms, end_ms]."""
    first = max(start_ms, FIRST_DAY_MS) // DAY_MS * DAY_MS
    return list(range(first, end_ms + 1, DAY_MS))


__all__ = ["BUCKET", "PERIOD_S", "ArchiveRow", "ArchiveUnavailable", "AssetCtxsArchive", "days_of", "key_of", "parse_day"]
