"""Binance USDT-M futures: everything the project knows of this venue. `adapter.py` (markets,
instrument definitions, current OI and funding, sandbox URLs), `history.py` (OI and funding
history paging), `schemas.py` (its REST payloads as structs), `limits.py` (request limits,
rate-limit answers, OI history periods and retention). Import-light: nothing is loaded here.
"""
