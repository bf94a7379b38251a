"""Venue emulator: Binance USDT-M, Bybit v5 linear and Hyperliquid REST on loopback.

Modules: market (deterministic model), binance / bybit / hyperliquid (aiohttp apps),
ground_truth (JSONL record of every served value), ccxt_config (point ccxt at it),
server (start_emulator) and __main__ (``python -m emulator --ready-file PATH``).
Kept import-light on purpose: ``emulator.ccxt_config`` must not pull in aiohttp.
"""
