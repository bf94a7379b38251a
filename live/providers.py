"""Instrument definitions for the node's cache, from the mesh's catalog (`CryptoPerpetual`s the
collectors stored, the same objects `catalog.instruments()` gives a backtest)."""

from __future__ import annotations

import asyncio

from nautilus_trader.common.providers import InstrumentProvider
from nautilus_trader.config import InstrumentProviderConfig
from nautilus_trader.model.identifiers import InstrumentId

from live.catalog import instruments


class CatalogInstrumentProvider(InstrumentProvider):
    def __init__(self, catalog_path: str, config: InstrumentProviderConfig | None = None) -> None:
        super().__init__(config=config)
        self.catalog_path = catalog_path

    async def load_all_async(self, filters: dict | None = None) -> None:
        for inst in await asyncio.to_thread(instruments, self.catalog_path):
            for currency in (inst.base_currency, inst.quote_currency, inst.settlement_currency):
                self.add_currency(currency)
            self.add(inst)

    async def load_ids_async(self, instrument_ids: list[InstrumentId], filters: dict | None = None) -> None:
        wanted = set(instrument_ids)
        await self.load_all_async(filters)
        for iid in [iid for iid in self._instruments if iid not in wanted]:
            del self._instruments[iid]

    async def load_async(self, instrument_id: InstrumentId, filters: dict | None = None) -> None:
        await self.load_ids_async([instrument_id], filters)
