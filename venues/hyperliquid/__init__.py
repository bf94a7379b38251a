"""Hyperliquid perpetuals: everything the project knows of this venue. `adapter.py` (markets,
instrument definitions, current OI and funding with the venue's predictions, sandbox URLs),
`history.py` (funding history; no OI history exists), `schemas.py` (its `info` payloads as
structs), `limits.py` (weights per request type). Import-light: nothing is loaded here.
"""
