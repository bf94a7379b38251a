"""A BacktestEngine with our catalog (instruments, open interest, funding) and quotes shaped as
NautilusTrader's own adapters make them; run by tests/nautilus/test_backtest_with_nautilus_quotes.py.

    python -m tests.nautilus.backtest_with_quotes CATALOG QUOTES.json

QUOTES.json: {"binance": [bookTicker frames], "bybit": [[ts_ns, bid, ask, bid_size, ask_size]]}.
Binance frames go through Nautilus's own parser (`BinanceQuoteData.parse_to_quote_tick`: prices
keep the precision the venue writes them with); Bybit quotes are made as its Rust adapter makes
them (`instrument.make_price` / `make_qty` of Nautilus's own instrument, built here from the same
instruments-info payload by Nautilus's Bybit client against the replay server the test gives in
QUOTES.json "bybit_url"). Prints {"quotes": {id: n}, "open_interest": {id: n}, "funding_rate": {id: n}}.
"""

import asyncio
import json
import sys

import msgspec
from nautilus_trader.adapters.binance.common.schemas.market import BinanceQuoteData
from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.config import LoggingConfig
from nautilus_trader.core import nautilus_pyo3
from nautilus_trader.model.data import DataType, QuoteTick
from nautilus_trader.model.enums import AccountType, OmsType
from nautilus_trader.model.identifiers import ClientId, InstrumentId, TraderId
from nautilus_trader.model.instruments import instruments_from_pyo3
from nautilus_trader.model.objects import Money
from nautilus_trader.persistence.catalog.parquet import ParquetDataCatalog
from nautilus_trader.trading.strategy import Strategy

from messages.nautilus import FundingRateUpdate, OpenInterest

CATALOG = ClientId("CATALOG")


class Counting(Strategy):
    def __init__(self, ids: list[InstrumentId]) -> None:
        super().__init__()
        self.ids = ids
        self.counts = {k: {str(i): 0 for i in ids} for k in ("quotes", "open_interest", "funding_rate")}

    def on_start(self) -> None:
        for i in self.ids:
            self.subscribe_quote_ticks(i)
            self.subscribe_data(DataType(OpenInterest), client_id=CATALOG, instrument_id=i)
            self.subscribe_funding_rates(i)

    def on_quote_tick(self, tick: QuoteTick) -> None:
        self.counts["quotes"][str(tick.instrument_id)] += 1

    def on_data(self, data) -> None:
        if isinstance(data, OpenInterest):
            self.counts["open_interest"][str(data.instrument_id)] += 1

    def on_funding_rate(self, update: FundingRateUpdate) -> None:
        self.counts["funding_rate"][str(update.instrument_id)] += 1


def binance_quotes(frames: list[dict]) -> list[QuoteTick]:
    decode = msgspec.json.Decoder(BinanceQuoteData).decode
    iid = InstrumentId.from_str("BTCUSDT-PERP.BINANCE")
    return [decode(msgspec.json.encode(f)).parse_to_quote_tick(iid) for f in frames]


def bybit_quotes(url: str, rows: list) -> list[QuoteTick]:
    async def load() -> list:  # the pyo3 client needs a running loop
        client = nautilus_pyo3.BybitHttpClient(base_url=url, max_retries=0)
        return await client.request_instruments(nautilus_pyo3.BybitProductType.LINEAR, None, None)

    (instrument,) = instruments_from_pyo3(asyncio.run(load()))
    return [QuoteTick(instrument.id, instrument.make_price(bid), instrument.make_price(ask), instrument.make_qty(bs),
                      instrument.make_qty(asz), ts, ts) for ts, bid, ask, bs, asz in rows]


def run(catalog_path: str, quotes_path: str) -> dict:
    quotes = json.loads(open(quotes_path).read())
    catalog = ParquetDataCatalog(catalog_path)
    instruments = {i.id: i for i in sorted(catalog.instruments(), key=lambda i: i.ts_init)}.values()  # newest wins
    engine = BacktestEngine(BacktestEngineConfig(trader_id=TraderId("BACKTESTER-001"),
                                                 logging=LoggingConfig(bypass_logging=True)))
    for venue in sorted({i.id.venue for i in instruments}, key=str):
        currencies = {i.settlement_currency for i in instruments if i.id.venue == venue}
        engine.add_venue(venue=venue, oms_type=OmsType.NETTING, account_type=AccountType.MARGIN, base_currency=None,
                         starting_balances=[Money(1_000_000, c) for c in sorted(currencies, key=str)])
    for instrument in instruments:
        engine.add_instrument(instrument)
    # Nautilus checks every quote against the instrument's precisions here.
    engine.add_data(binance_quotes(quotes["binance"]) + bybit_quotes(quotes["bybit_url"], quotes["bybit"]))
    for instrument in instruments:
        ids = [instrument.id.value]
        engine.add_data(catalog.query(OpenInterest, identifiers=ids), client_id=CATALOG, sort=False)
        engine.add_data(catalog.query(FundingRateUpdate, identifiers=ids), sort=False)
    engine.sort_data()
    strategy = Counting([i.id for i in instruments])
    engine.add_strategy(strategy)
    engine.run()
    engine.dispose()
    return strategy.counts


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1], sys.argv[2]), sort_keys=True))
