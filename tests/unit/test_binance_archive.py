"""Binance archive files (venues/binance/archive.py) read as the real ones are written: quoted real
rows (tests/fixtures/real/binance/archive_files.json), checksums, and what makes a file unusable."""

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest

from venues.binance.archive import ArchiveFileError, parse_funding, parse_metrics, verified

SAMPLE = json.loads((Path(__file__).parents[1] / "fixtures/real/binance/archive_files.json").read_text())


def zipped(name: str, text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, text)
    return buf.getvalue()


def test_metrics_rows_land_on_the_rest_bucket_grid() -> None:
    table = parse_metrics("BTCUSDT-metrics-x.zip", zipped("BTCUSDT-metrics-x.csv", SAMPLE["metrics_csv"]))
    rows = table.to_pylist()
    # 2025-10-07 00:00:00 / 00:05:00 UTC, and 2026-07-11 00:05:01 (a second late) -> 00:05:00
    assert [r["ts_ms"] for r in rows] == [1759795200000, 1759795500000, 1783728300000]
    assert (rows[2]["sum_open_interest"], rows[2]["sum_open_interest_value"]) == (103887.929, 6655883739.441257)
    assert rows[2]["sum_taker_long_short_vol_ratio"] == 0.407918  # the ratio columns stay available


def test_duplicated_rows_of_the_first_era_count_once() -> None:
    header, *lines = SAMPLE["metrics_csv"].splitlines()
    doubled = "\n".join([header, *(line for line in lines for _ in (0, 1))]) + "\n"
    table = parse_metrics("d.zip", zipped("d.csv", doubled))
    assert table.num_rows == 3


def test_funding_calc_time_a_millisecond_late_is_the_settlement() -> None:
    rows = parse_funding("f.zip", zipped("f.csv", SAMPLE["funding_csv"])).to_pylist()
    assert rows == [{"ts_ms": 1780272000000, "interval_minutes": 480, "rate": 0.00005703}]


def test_checksum_is_verified_and_a_mismatch_names_the_file() -> None:
    body = zipped("a.csv", SAMPLE["funding_csv"])
    digest = hashlib.sha256(body).hexdigest()
    assert verified("BTCUSDT-fundingRate-2026-06.zip", body, f"{digest}  BTCUSDT-fundingRate-2026-06.zip\n") == body
    with pytest.raises(ArchiveFileError, match=r"BTCUSDT-fundingRate-2026-06.zip: checksum mismatch: .*" + digest):
        verified("BTCUSDT-fundingRate-2026-06.zip", body, f"{'0' * 64}  BTCUSDT-fundingRate-2026-06.zip")
    with pytest.raises(ArchiveFileError, match="is not '<sha256>  BTCUSDT-fundingRate-2026-06.zip'"):
        verified("BTCUSDT-fundingRate-2026-06.zip", body, "<html>error</html>")


def test_unusable_files_name_themselves() -> None:
    with pytest.raises(ArchiveFileError, match="BTCUSDT-metrics-2024-01-01.zip: not a readable zip"):
        parse_metrics("BTCUSDT-metrics-2024-01-01.zip", zipped("m.csv", SAMPLE["metrics_csv"])[:100])
    other = SAMPLE["metrics_csv"].replace("sum_open_interest,", "open_interest,", 1)
    with pytest.raises(ArchiveFileError, match="BTCUSDT-metrics-2024-01-02.zip: header 'create_time,symbol,open_interest"):
        parse_metrics("BTCUSDT-metrics-2024-01-02.zip", zipped("m.csv", other))
    with pytest.raises(ArchiveFileError, match="BTCUSDT-metrics-2024-01-03.zip: unreadable CSV"):
        parse_metrics("BTCUSDT-metrics-2024-01-03.zip", zipped("m.csv", SAMPLE["metrics_csv"].replace("2025-10-07 00:05:00", "soon")))
