"""The venue emulator: Binance USDT-M, Bybit v5 linear and Hyperliquid on loopback, REST and
liquidation WebSockets, from a seeded deterministic market, with every served value recorded.

Layout (each venue in its own package, none importing another; the shared engines below them):

- `binance/`, `bybit/`, `hyperliquid/`: one venue each: listing, REST (or info) and history
  handlers, liquidation stream, error answers, request limits and fault rules; each exports
  `EMULATED` (an `EmulatedVenue`, `venue.py`).
- shared engines: `market` (the model), `ground_truth` (JSONL record of every served value),
  `history` (holes, settlements, paging, request counts), `liquidations` (generator, cascades,
  controls), `websocket` (sockets and their faults), `faults`, `ratelimit`, `replay`, `common`
  (context, number formats, HTTP plumbing).
- assembly: `server` (the venue registry, `start_emulator`, `start_replay`, the ready file) and
  `__main__` (``python -m emulator``); `process` spawns that command and waits for it to be ready.
- ccxt clients are pointed at it by each venue adapter's `sandbox_config` (`venues/<venue>/adapter.py`).

Kept import-light on purpose: ``emulator.process`` must not pull in
aiohttp.
"""
