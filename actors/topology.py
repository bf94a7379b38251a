"""`topology.yaml`: what the mesh runs, decoded and validated with msgspec.

Every struct forbids unknown fields, so a typo is an error instead of a silently ignored
setting. `load_topology` turns msgspec's error into one line that names the file, the field,
the bad value and what would be allowed.
"""

import difflib
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from venues import VENUE_NAMES, oi_history_periods

VenueName = Literal[VENUE_NAMES]  # type: ignore[valid-type]  # the registry's names (venues/__init__.py)

Seconds = Annotated[float, msgspec.Meta(gt=0)]
Name = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]+$", min_length=1, max_length=64)]
OiPeriod = Literal["5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d"]
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: str | float, name: str = "duration") -> float:
    """'90s', '30m', '12h', '2d' or a number of seconds (>= 0) -> seconds; ValueError otherwise."""
    allowed = "allowed: a number of seconds >= 0, or a number followed by s, m, h or d (e.g. '12h', '2d')"
    if isinstance(value, bool):
        raise ValueError(f"{name}: {value!r} is not a duration; {allowed}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip().lower()
        try:
            seconds = float(text[:-1]) * _DURATION_UNITS[text[-1]] if text and text[-1] in _DURATION_UNITS else float(text)
        except ValueError:
            raise ValueError(f"{name}: {value!r} is not a duration; {allowed}") from None
    if not seconds >= 0 or seconds == float("inf"):
        raise ValueError(f"{name}: {value!r} is not a duration; {allowed}")
    return seconds


class VenueConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One venue's collector: which perpetuals, and how often to poll them."""

    venue: VenueName
    # a list of symbols, or "all": every perpetual the venue lists and trades (its adapter's
    # `collectable`), followed as it lists and delists them (actors/listing.py)
    symbols: Annotated[list[str], msgspec.Meta(min_length=1)] | Literal["all"]
    exclude: list[str] = []  # with `symbols: all`: these are not collected (any name `symbols` takes)
    # unset: 10 s / 60 s / 3600 s for a list of symbols; 60 s each with `symbols: all` (hundreds
    # of perpetuals: Binance has no bulk open-interest call, one request per symbol per interval)
    open_interest_interval_s: Seconds | msgspec.UnsetType = msgspec.UNSET
    funding_interval_s: Seconds = 60.0
    instruments_interval_s: Seconds | msgspec.UnsetType = msgspec.UNSET  # refresh of the instrument definitions
    unknown_symbol_retry_s: Seconds = 600.0  # a symbol the venue does not list is looked up again this rarely
    liquidations: bool = False  # stream liquidations (Binance, Bybit; Hyperliquid has no public feed)
    liquidation_silence_timeout_s: Seconds = 60.0  # connected but no frame this long: reconnect
    liquidation_all_symbols: bool = False  # binance only: !forceOrder@arr, every USDT-M perpetual, not just `symbols`
    outbox_max_events: Annotated[int, msgspec.Meta(gt=0)] = 200_000  # unacknowledged events in memory (in flight)
    outbox_spool_mb: Annotated[int, msgspec.Meta(ge=0)] = 1024  # then on disk (run_dir/spool); beyond: gap
    # History kept filled from the catalog (actors/backfill.py, docs/history.md): on start the
    # collector fetches what the catalog lacks of the last `backfill_lookback` (OI history at
    # `backfill_oi_period`, settled funding), then tops it up every `backfill_interval_s`.
    backfill_lookback: str | float = 0  # "90m", "12h", "2d" or seconds; 0 = off
    backfill_oi_period: OiPeriod = "5m"  # Binance: 5m..1d; Bybit: 5m 15m 30m 1h 4h 1d; Hyperliquid: no OI history
    backfill_interval_s: Seconds = 600.0
    enabled: bool = True
    record: bool = False  # record the venue's raw REST answers to run_dir/recordings/<venue>.jsonl

    def __post_init__(self) -> None:
        if self.exclude and not self.all_symbols:
            raise ValueError(f"exclude: {self.exclude!r} needs `symbols: all` (a list of symbols names what it collects)")
        every = self.all_symbols
        for name, listed, whole in (("open_interest_interval_s", 10.0, 60.0), ("instruments_interval_s", 3600.0, 60.0)):
            if getattr(self, name) is msgspec.UNSET:  # frozen: msgspec's own setter for a derived default
                msgspec.structs.force_setattr(self, name, whole if every else listed)
        parse_duration(self.backfill_lookback, "backfill_lookback")
        periods = oi_history_periods(self.venue)  # each venue's own (venues/<venue>/limits.py)
        if periods and self.backfill_oi_period not in periods:
            raise ValueError(f"backfill_oi_period: {self.backfill_oi_period!r} is not served by {self.venue}; "
                             f"allowed: {', '.join(periods)}")

    @property
    def all_symbols(self) -> bool:
        """`symbols: all`: every perpetual the venue lists and trades."""
        return self.symbols == "all"

    @property
    def backfill_lookback_s(self) -> float:
        return parse_duration(self.backfill_lookback, "backfill_lookback")


class RestartPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Erlang-style one_for_one: backoff between restarts, and a crash-loop limit."""

    backoff_initial_s: Seconds = 0.5
    backoff_max_s: Seconds = 30.0
    reset_after_s: Seconds = 10.0  # up this long -> the next crash starts from the initial backoff
    max_restarts: Annotated[int, msgspec.Meta(ge=0)] = 5
    window_s: Seconds = 60.0  # more than max_restarts in this window -> the actor is marked failed


class WriterConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """When the writer syncs its WAL (group commit) and writes Parquet."""

    flush_interval_s: Seconds = 30.0
    wal_sync_interval_s: Seconds = 0.05
    wal_sync_events: Annotated[int, msgspec.Meta(gt=0)] = 2000


def bus_dir(mesh: str) -> Path:
    """Where a mesh's default ipc endpoints live: `/tmp/derivs-<uid>/<mesh>/` (DERIVS_BUS_DIR
    overrides the root), mode 0700 so other users cannot connect. Short on purpose: a socket
    path may not exceed 107 bytes."""
    return Path(os.environ.get("DERIVS_BUS_DIR") or f"/tmp/derivs-{os.getuid()}") / mesh


class BusConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """ZeroMQ endpoints; empty means `ipc://<bus_dir>/<name>`, a socket file in a directory only
    its user can enter (the coordinator's lock there keeps a second mesh of the same name out)."""

    ingest: str = ""  # collectors -> validator
    store: str = ""  # validator -> writer
    taps: str = ""  # validator's live PUB for taps
    control: str = ""  # coordinator: actor stats in, bin/ctl commands

    allow_remote: bool = False  # a tcp endpoint beyond loopback needs this: the bus has no authentication

    def endpoint(self, mesh: str, name: str) -> str:
        return getattr(self, name) or f"ipc://{bus_dir(mesh) / name}"

    def remote_endpoints(self) -> list[tuple[str, str]]:
        """(name, endpoint) of the tcp endpoints whose address is not a loopback one."""
        out = []
        for name in ("ingest", "store", "taps", "control"):
            endpoint = getattr(self, name)
            if endpoint.startswith("tcp://"):
                host = endpoint[len("tcp://"):].rsplit(":", 1)[0].strip("[]")
                if not (host == "localhost" or host == "::1" or host.startswith("127.")):
                    out.append((name, endpoint))
        return out


class SandboxConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The built-in venue emulator used by `--sandbox`."""

    seed: int = 7
    host: str = "127.0.0.1"
    start_emulator: bool = True  # False: connect to an emulator started elsewhere (`emulator_file`)
    emulator_file: str = ""  # JSON {venue: base_url}; default <run_dir>/emulator.json
    rate_limits: bool = True  # the emulated venues enforce the real request limits (429/418 like the venues)
    replay: str = ""  # a recording (run/recordings of a `record: true` run) served instead of the model; relative to this file
    universe: Literal["full", "core"] = "full"  # full: as many perpetuals as the venues list; core: six coins (emulator/universe.py)


class Topology(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The whole mesh. Relative paths are relative to the topology file."""

    mesh: Name = "derivs"
    catalog: str = "catalog"
    run_dir: str = "run"  # logs, WAL, dead letters, emulator ready file
    venues: Annotated[list[VenueConfig], msgspec.Meta(min_length=1)]
    writer: WriterConfig = WriterConfig()
    restart: RestartPolicy = RestartPolicy()
    bus: BusConfig = BusConfig()
    sandbox: SandboxConfig = SandboxConfig()
    # unset: 10 s, or 30 s when a venue collects `symbols: all` (the writer's last flush then
    # covers thousands of directories: several seconds on a busy 2-core machine)
    shutdown_timeout_s: Seconds | msgspec.UnsetType = msgspec.UNSET
    log_json: bool = False  # also write a JSON-lines log per actor

    def __post_init__(self) -> None:
        if self.shutdown_timeout_s is msgspec.UNSET:  # frozen: msgspec's own setter for a derived default
            every = any(v.all_symbols for v in self.venues)
            msgspec.structs.force_setattr(self, "shutdown_timeout_s", 30.0 if every else 10.0)

    def venue(self, name: str) -> VenueConfig:
        for v in self.venues:
            if v.venue == name:
                return v
        raise KeyError(name)

    def endpoint(self, name: str) -> str:
        return self.bus.endpoint(self.mesh, name)


class TopologyError(ValueError):
    """A topology file that cannot be used; the message says where and why."""


def load_topology(path: str | os.PathLike, *, catalog: str | None = None) -> tuple[Topology, Path]:
    """Read and validate a topology file. Returns it with paths made absolute, and its path."""
    path = Path(path).resolve()
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise TopologyError(f"{path}: cannot read the topology file: {exc.strerror}") from None
    try:
        raw = msgspec.yaml.decode(text)
    except msgspec.DecodeError as exc:
        raise TopologyError(f"{path}: not valid YAML: {exc}") from None
    try:
        topo = msgspec.convert(raw, Topology)
    except msgspec.ValidationError as exc:
        raise TopologyError(f"{path}: {explain(exc, raw, Topology)}") from None
    seen = [v.venue for v in topo.venues]
    dupes = sorted({v for v in seen if seen.count(v) > 1})
    if dupes:
        raise TopologyError(f"{path}: venues: {', '.join(dupes)} listed more than once (one entry per venue)")
    remote = topo.bus.remote_endpoints()
    if remote and not topo.bus.allow_remote:
        name, endpoint = remote[0]
        raise TopologyError(f"{path}: bus.{name}: {endpoint!r} is reachable from other machines and the bus has no "
                            "authentication; use tcp://127.0.0.1:PORT (or ipc), or set bus.allow_remote: true")
    base = path.parent
    # --catalog on the command line is relative to the working directory, the file's to the file.
    catalog_path = Path(catalog).resolve() if catalog else (base / topo.catalog).resolve()
    topo = msgspec.structs.replace(topo, catalog=str(catalog_path), run_dir=str((base / topo.run_dir).resolve()))
    return topo, path


def explain(exc: msgspec.ValidationError, raw: Any, root: type) -> str:
    """msgspec's message, plus the offending value and the allowed values where we can tell."""
    message = str(exc)
    where = ""
    if " - at `$" in message:
        message, where = message.rsplit(" - at `", 1)
        where = where.rstrip("`")
    keys = _parse_path(where)
    field = where[2:] if where.startswith("$.") else where.lstrip("$") or "(top level)"
    value = _lookup(raw, keys)
    hint = _allowed(root, keys, message)
    parts = [f"{field}: {message}"]
    if value is not _MISSING and not message.startswith("Object "):
        parts.append(f"value: {value!r}")
    if hint:
        parts.append(hint)
    return "; ".join(parts)


_MISSING = object()


def _parse_path(where: str) -> list[str | int]:
    keys: list[str | int] = []
    for part in where.removeprefix("$").replace("[", ".[").split("."):
        if not part:
            continue
        keys.append(int(part[1:-1]) if part.startswith("[") else part)
    return keys


def _lookup(raw: Any, keys: list[str | int]) -> Any:
    for key in keys:
        try:
            raw = raw[key]
        except (KeyError, IndexError, TypeError):
            return _MISSING
    return raw


def _allowed(root: type, keys: list[str | int], message: str) -> str:
    """Walk the type along the path; name the allowed values or fields."""
    info: Any = msgspec.inspect.type_info(root)
    for key in keys:
        while isinstance(info, msgspec.inspect.UnionType):
            info = next((t for t in info.types if not isinstance(t, msgspec.inspect.NoneType | msgspec.inspect.LiteralType)), info)
        if isinstance(info, msgspec.inspect.StructType) and isinstance(key, str):
            info = next((f.type for f in info.fields if f.encode_name == key), None)
        elif isinstance(info, msgspec.inspect.ListType) and isinstance(key, int):
            info = info.item_type
        else:
            return ""
        if info is None:
            return ""
    if isinstance(info, msgspec.inspect.LiteralType):
        return "allowed: " + ", ".join(map(str, info.values))
    if isinstance(info, msgspec.inspect.UnionType):  # e.g. symbols: a list or "all"
        words = [v for t in info.types if isinstance(t, msgspec.inspect.LiteralType) for v in t.values]
        lists = any(isinstance(t, msgspec.inspect.ListType) for t in info.types)
        return "allowed: " + " or ".join([*(repr(w) for w in words), *(["a list"] if lists else [])]) if words else ""
    if isinstance(info, msgspec.inspect.StructType) and "unknown field" in message:
        names = [f.encode_name for f in info.fields]
        bad = message.split("`")[1] if "`" in message else ""
        close = difflib.get_close_matches(bad, names, n=1)
        return (f"did you mean {close[0]!r}? " if close else "") + "allowed fields: " + ", ".join(names)
    return ""
