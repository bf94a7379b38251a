"""Bybit v5 linear perpetuals: everything the project knows of this venue. `adapter.py` (markets,
instrument definitions, current OI and funding, sandbox URLs), `history.py` (OI and funding
history paging), `schemas.py` (its REST payloads as structs), `limits.py` (request limits,
`retCode` 10006 and 403, OI history periods). Import-light: nothing is loaded here.
"""
