"""Owns Binance's public data archive (data.binance.vision) as the emulator serves it, on the
Binance app's port (the client's archive base URL in the sandbox is the venue's URL):

- `GET /data/futures/um/daily/metrics/<SYMBOL>/<SYMBOL>-metrics-<YYYY-MM-DD>.zip`: one CSV
  `<SYMBOL>-metrics-<YYYY-MM-DD>.csv`, header `create_time,symbol,sum_open_interest,
  sum_open_interest_value,count_toptrader_long_short_ratio,sum_toptrader_long_short_ratio,
  count_long_short_ratio,sum_taker_long_short_vol_ratio`, one row per 5-minute snapshot,
  `create_time` as `YYYY-MM-DD HH:MM:SS` (UTC).
- `GET /data/futures/um/monthly/fundingRate/<SYMBOL>/<SYMBOL>-fundingRate-<YYYY-MM>.zip`: header
  `calc_time,funding_interval_hours,last_funding_rate`, `calc_time` in epoch ms.
- `<file>.CHECKSUM` beside each: `<sha256 hex>  <file name>` (`sha256sum -c` format).
- A file not published: HTTP 404 with S3's `NoSuchKey` XML, as the real bucket answers.

Quirks of the real archive reproduced here (observed by users who downloaded all of BTCUSDT's
files, e.g. "Bulk Data Availability - Verified", 2026-08; and recorded samples of the CSVs):
metrics files start 2020-09-01 (BTCUSDT, listed 2019-09), funding months from the listing month;
a daily file appears once its day is over; a few days are missing (404) inside the range; rows of
the first era (before 2021-05-22) are duplicated; `create_time` is sometimes a second late
(`2026-07-11 00:05:01`) and `calc_time` a millisecond late (`1780272000001`).

Values are the market model's, exactly the strings `/futures/data/openInterestHist` and
`/fapi/v1/fundingRate` serve for the same instant (`emulator/binance/history.py`), with the
REST history's own lost buckets and settlements: ground truth agrees across the archive/REST seam.
Every row served from an intact zip is a ground-truth record ("open_interest_history" /
"funding_history" with `source` "archive" and the file's path as endpoint).

Fault control: `POST /_emulator/archive/corrupt?file=<file name>&what=zip|checksum[&clear=1]`
publishes that zip truncated (a corrupt zip, its CHECKSUM computed over the broken bytes, so only
opening it fails) or its CHECKSUM with another digest (what a download cut short also looks like); `GET
/_emulator/archive` lists the faults and the missing days of a symbol (`?symbol=BTCUSDT`).
"""

from __future__ import annotations

import hashlib
import io
import re
import time
import zipfile
from collections import OrderedDict
from datetime import UTC, date, datetime, timedelta

from aiohttp import web

from emulator.binance.history import BinanceHistory, oi_strings
from emulator.binance.instruments import VENUE, Instrument
from emulator.common import VenueContext, fixed, json_response
from emulator.history import funding_hole, interval_minutes_of, oi_hole, settlements
from emulator.market import DAY, MIN, _key

METRICS_HEADER = ("create_time,symbol,sum_open_interest,sum_open_interest_value,count_toptrader_long_short_ratio,"
                  "sum_toptrader_long_short_ratio,count_long_short_ratio,sum_taker_long_short_vol_ratio")
FUNDING_HEADER = "calc_time,funding_interval_hours,last_funding_rate"
METRICS_FIRST_DAY = date(2020, 9, 1)  # the first daily metrics file on the real archive
DUPLICATED_UNTIL = date(2021, 5, 22)  # the real files before this day carry every row twice
MISSING_SHARE = 0.015  # about five missing days a year
_UM = "/data/futures/um"
_NAME = re.compile(r"^(?P<symbol>[A-Z0-9]+)-(?P<kind>metrics|fundingRate)-(?P<period>\d{4}-\d{2}(-\d{2})?)\.zip"
                   r"(?P<checksum>\.CHECKSUM)?$")
_NOT_FOUND = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code>'
              "<Message>The specified key does not exist.</Message><Key>{key}</Key></Error>")


def _day(ms: int) -> date:
    return datetime.fromtimestamp(ms / 1000, UTC).date()


def _ms(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() * 1000)


def _zip(member: str, text: str, stamp: date) -> bytes:
    """The same bytes every time (the member's date is the file's period, not now): a file and
    its CHECKSUM, asked for separately, must agree."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(zipfile.ZipInfo(member, (stamp.year, stamp.month, stamp.day, 0, 0, 0)), text,
                   compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()


class BinanceArchive:
    """The archive handlers over one venue context."""

    def __init__(self, ctx: VenueContext) -> None:
        self.ctx = ctx
        self.market = ctx.market
        self.history = BinanceHistory(ctx)  # the same perpetuals and values as the REST history
        self.corrupt: dict[str, str] = {}  # file name -> "zip" | "checksum"
        # the last files built: a client asks for the zip, then its CHECKSUM (same bytes, built once)
        self._recent: OrderedDict[tuple[str, str], tuple[bytes, list[dict]]] = OrderedDict()

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(_UM + "/daily/metrics/{symbol}/{name}", self.serve),
            web.get(_UM + "/monthly/fundingRate/{symbol}/{name}", self.serve),
            web.post("/_emulator/archive/corrupt", self.set_corrupt),
            web.get("/_emulator/archive", self.state),
        ]

    # -- availability ----------------------------------------------------------------------

    def first_day(self, inst: Instrument) -> date:
        return max(METRICS_FIRST_DAY, _day(inst.onboard_ms))

    def missing(self, inst: Instrument, d: date) -> bool:
        """A day the archive lacks (deterministic, never the first day)."""
        u = self.market._uniform(_key("archive-missing", inst.symbol), _ms(d) // DAY)  # noqa: SLF001
        return d != self.first_day(inst) and (u + 1) / 2 < MISSING_SHARE

    def metrics_published(self, inst: Instrument, d: date, now_ms: int) -> bool:
        return self.first_day(inst) <= d and _ms(d) + DAY <= now_ms and not self.missing(inst, d)

    @staticmethod
    def month_bounds(period: str) -> tuple[int, int]:
        y, m = map(int, period.split("-"))
        start = date(y, m, 1)
        return _ms(start), _ms(date(y + (m == 12), m % 12 + 1, 1))

    # -- files --------------------------------------------------------------------------------

    def metrics_file(self, inst: Instrument, d: date, now: int) -> tuple[str, list[dict]]:
        """The CSV of one day and the ground-truth records of its rows."""
        lines, records = [METRICS_HEADER], []
        day0 = _ms(d)
        start = max(day0, -(-inst.onboard_ms // (5 * MIN)) * 5 * MIN)
        key = _key("archive-row", inst.symbol)
        record = self.ctx.recorder.enabled
        for t in range(start, day0 + DAY, 5 * MIN):
            if oi_hole(self.market, "binance", inst.coin, t, now):
                continue
            oi_str, value_str = oi_strings(self.market, inst, t)
            u = self.market._uniform(key, t // MIN)  # noqa: SLF001
            s = (t - day0) // 1000 + (u > 0.9)  # a snapshot written a second late, as some real rows are
            ratios = ",".join(fixed(1.0 + 0.6 * u * k, 8) for k in (0.9, -0.7, 0.5, -0.3))  # not stored by the client
            line = f"{d} {s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d},{inst.symbol},{oi_str},{value_str},{ratios}"
            lines += [line, line] if d < DUPLICATED_UNTIL else [line]
            if record:
                records.append({"ts_ms": t, "open_interest": float(oi_str), "open_interest_value": float(value_str),
                                "kind": "open_interest_history", "period": "5m"})
        return "\n".join(lines) + "\n", records

    def funding_file(self, inst: Instrument, period: str, now: int) -> tuple[str, list[dict]]:
        lo, hi = self.month_bounds(period)
        lines, records = [FUNDING_HEADER], []
        for s in settlements(self.market, "binance", inst.coin, max(lo, inst.onboard_ms), hi - 1):
            if funding_hole(self.market, "binance", inst.coin, s, now):
                continue
            rate = fixed(self.market.funding_rate("binance", inst.coin, s), 8)
            minutes = interval_minutes_of(self.market, "binance", inst.coin, s)
            late = 1 if self.market._uniform(_key("archive-calc", inst.symbol), s // MIN) > 0.8 else 0  # noqa: SLF001
            lines.append(f"{s + late},{minutes // 60},{rate}")
            records.append({"ts_ms": s, "rate": float(rate), "mark_price": None, "interval_minutes": minutes,
                            "kind": "funding_history"})
        return "\n".join(lines) + "\n", records

    def build(self, inst: Instrument, kind: str, period: str, now: int) -> tuple[str, list[dict]] | None:
        """(CSV text, records) of a published file, None if the archive does not have it."""
        if kind == "metrics":
            try:
                d = date.fromisoformat(period)
            except ValueError:
                return None
            return self.metrics_file(inst, d, now) if self.metrics_published(inst, d, now) else None
        if len(period) != 7:
            return None
        lo, hi = self.month_bounds(period)
        if hi > now or hi <= inst.onboard_ms:
            return None
        return self.funding_file(inst, period, now)

    def file(self, inst: Instrument, kind: str, period: str, zip_name: str, now: int) -> tuple[bytes, list[dict]] | None:
        """(zip bytes, records) of a published file, built once for the zip and its CHECKSUM."""
        key = (inst.symbol, zip_name)
        if key not in self._recent:  # only published files are kept: a day not over yet will be published
            built = self.build(inst, kind, period, now)
            if built is None:
                return None
            stamp = date.fromisoformat(period if len(period) == 10 else period + "-01")
            self._recent[key] = (_zip(zip_name.removesuffix(".zip") + ".csv", built[0], stamp), built[1])
            # without ground truth (benchmarks) four years of files fit; with it, records are large
            while len(self._recent) > (256 if self.ctx.recorder.enabled else 4096):
                self._recent.popitem(last=False)
        return self._recent[key]

    # -- handlers -----------------------------------------------------------------------------

    async def serve(self, request: web.Request) -> web.Response:
        """A zip or its CHECKSUM; 404 (S3 NoSuchKey) for anything the archive does not have."""
        now = self.ctx.now_ms()
        m = _NAME.match(request.match_info["name"])
        inst = self.history.lookup(request.match_info["symbol"], now)
        kind = "metrics" if "/daily/metrics/" in request.path else "fundingRate"
        if m is None or inst is None or m["symbol"] != inst.symbol or m["kind"] != kind:
            return self.not_found(request)
        zip_name = request.match_info["name"].removesuffix(".CHECKSUM")
        built = self.file(inst, kind, m["period"], zip_name, now)
        if built is None:
            return self.not_found(request)
        body, records = built
        fault = self.corrupt.get(zip_name)
        if fault == "zip":  # a broken file as published: its CHECKSUM matches it, the zip does not open
            body = body[: len(body) // 2]
        if m["checksum"]:
            digest = hashlib.sha256(body + (b"x" if fault == "checksum" else b"")).hexdigest()
            return web.Response(text=f"{digest}  {zip_name}\n", content_type="text/plain")
        if fault == "zip":
            return web.Response(body=body, content_type="application/zip")
        served = time.time_ns()
        path = request.path
        self.ctx.recorder.write([{**r, "venue": VENUE, "endpoint": path, "coin": inst.coin, "raw_symbol": inst.symbol,
                                  "served_ns": served, "source": "archive"} for r in records])
        return web.Response(body=body, content_type="application/zip")

    @staticmethod
    def not_found(request: web.Request) -> web.Response:
        return web.Response(status=404, text=_NOT_FOUND.format(key=request.path.lstrip("/")),
                            content_type="application/xml")

    async def set_corrupt(self, request: web.Request) -> web.Response:
        """POST /_emulator/archive/corrupt?file=NAME&what=zip|checksum[&clear=1]."""
        name, what = request.query.get("file", ""), request.query.get("what", "zip")
        if not _NAME.match(name) or name.endswith(".CHECKSUM") or what not in ("zip", "checksum"):
            return json_response({"error": "file=<SYMBOL>-metrics-<YYYY-MM-DD>.zip or <SYMBOL>-fundingRate-<YYYY-MM>.zip, "
                                           "what=zip|checksum"}, status=400)
        if request.query.get("clear"):
            self.corrupt.pop(name, None)
        else:
            self.corrupt[name] = what
        return json_response({"corrupt": self.corrupt})

    async def state(self, request: web.Request) -> web.Response:
        """GET /_emulator/archive[?symbol=S]: faults; with a symbol its first day and missing days."""
        out: dict = {"corrupt": self.corrupt}
        now = self.ctx.now_ms()
        inst = self.history.lookup(request.query.get("symbol"), now)
        if inst is not None:
            first, last = self.first_day(inst), _day(now) - timedelta(days=1)
            days = (first + timedelta(days=i) for i in range((last - first).days + 1))
            out.update(first_day=first.isoformat(), missing_days=[d.isoformat() for d in days if self.missing(inst, d)])
        return json_response(out)
