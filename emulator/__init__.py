"""Venue emulator: Binance USDT-M, Bybit v5 linear and Hyperliquid REST on loopback.

Modules: market (deterministic model), binance / bybit / hyperliquid (aiohttp apps),
ground_truth (JSONL record of every served value), server (start_emulator) and __main__
(``python -m emulator --ready-file PATH``). ccxt clients are pointed at it by each venue
adapter's ``sandbox_config`` (``venues/<venue>/adapter.py``).
"""
