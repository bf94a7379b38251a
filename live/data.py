"""`DerivsDataClient`: the mesh's open interest, funding, liquidations and gaps, live, in a
NautilusTrader `TradingNode`, as the same objects the catalog holds for a backtest.

    subscribe_data(DataType(OpenInterest, metadata={"instrument_id": iid}), client_id=ClientId("DERIVS"))
    subscribe_data(DataType(Liquidation), client_id=ClientId("DERIVS"), instrument_id=iid)   # both forms
    subscribe_funding_rates(iid)          # -> on_funding_rate(FundingRateUpdate): live estimates
    request_data(DataType(OpenInterest, ...), ClientId("DERIVS"), start=...)   # history from the catalog

Custom data (`OpenInterest`, `Liquidation`, `FundingRateInfo`, `FundingSettlement`, `Gap`)
arrives in `on_data`; each subscription is one topic of the live bus
(`<kind>.<VENUE>.<instrument id>`), so the bus replays its last value at once. Instrument
definitions go to the cache at connect (catalog) and whenever the bus publishes one (the
collectors send them at start). The bus is read on the node's own loop (zmq.asyncio); catalog
reads run in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import LiveClock, Logger, MessageBus
from nautilus_trader.core.data import Data
from nautilus_trader.data.messages import (RequestData, RequestFundingRates, RequestInstrument, RequestInstruments,
                                           SubscribeData, SubscribeFundingRates, UnsubscribeData, UnsubscribeFundingRates)
from nautilus_trader.live.data_client import LiveMarketDataClient
from nautilus_trader.model.data import CustomData, DataType
from nautilus_trader.model.identifiers import ClientId, InstrumentId
from nautilus_trader.model.instruments import Instrument

from actors.validator import TOPIC_KIND
from live.bus import BusSubscriber
from live.catalog import history
from live.config import DerivsDataClientConfig
from live.convert import to_nautilus
from live.providers import CatalogInstrumentProvider
from messages import events
from messages.events import AnyEvent
from messages.nautilus import FundingRateInfo, FundingRateUpdate, FundingSettlement, Gap, Liquidation, OpenInterest

# Nautilus class -> the bus kind whose events become it (one funding event: update + info, or a settlement)
BUS_KIND: dict[type, str] = {
    OpenInterest: TOPIC_KIND[events.OpenInterest],
    Liquidation: TOPIC_KIND[events.Liquidation],
    FundingRateInfo: TOPIC_KIND[events.FundingRate],
    FundingSettlement: TOPIC_KIND[events.FundingRate],
    FundingRateUpdate: TOPIC_KIND[events.FundingRate],
    Gap: TOPIC_KIND[events.Gap],
}
CUSTOM_TYPES = ", ".join(c.__name__ for c in BUS_KIND if c is not FundingRateUpdate)
INSTRUMENTS_TOPIC = f"{TOPIC_KIND[events.Instrument]}.".encode()


def bus_topic(data_cls: type, instrument_id: InstrumentId) -> bytes:
    return f"{BUS_KIND[data_cls]}.{instrument_id.venue}.{instrument_id}".encode()


class DerivsDataClient(LiveMarketDataClient):
    def __init__(self, loop: asyncio.AbstractEventLoop, client_id: ClientId, msgbus: MessageBus, cache: Cache,
                 clock: LiveClock, instrument_provider: CatalogInstrumentProvider, config: DerivsDataClientConfig,
                 endpoint: str, catalog_path: str) -> None:
        super().__init__(loop=loop, client_id=client_id, venue=None, msgbus=msgbus, cache=cache, clock=clock,
                         instrument_provider=instrument_provider, config=config)
        self.catalog_path = catalog_path
        self.bus = BusSubscriber(endpoint, self._on_events, Logger(f"{client_id}.bus"), config.no_bus_warning_s)
        self.custom: dict[tuple[type, str], set[DataType]] = {}  # (class, instrument id) -> subscribed data types
        self.funding: set[str] = set()  # instrument ids subscribed to FundingRateUpdate

    # -- connection ------------------------------------------------------------------------------

    async def _connect(self) -> None:
        await self._instrument_provider.initialize()
        for currency in self._instrument_provider.currencies().values():
            self._cache.add_currency(currency)
        for inst in self._instrument_provider.list_all():
            self._handle_data(inst)
        self._log.info(f"{self._instrument_provider.count} instruments from the catalog {self.catalog_path}")
        self.bus.subscribe(INSTRUMENTS_TOPIC)  # the bus replays every instrument's last definition
        self.bus.start()

    async def _disconnect(self) -> None:
        await self.bus.close()

    # -- subscriptions ---------------------------------------------------------------------------

    def _target(self, data_type: DataType, instrument_id: InstrumentId | None) -> InstrumentId | None:
        """The instrument of a custom data subscription or request (argument or metadata)."""
        if data_type.type not in BUS_KIND or data_type.type is FundingRateUpdate:
            self._log.error(f"{data_type.type.__name__} is not data of the mesh: it delivers {CUSTOM_TYPES} "
                            "(and FundingRateUpdate through subscribe_funding_rates)")
            return None
        iid = instrument_id or data_type.metadata.get("instrument_id")
        if iid is None:
            self._log.error(f"{data_type}: give the instrument, as `instrument_id=` or in the metadata "
                            "(DataType(OpenInterest, metadata={'instrument_id': 'BTCUSDT-PERP.BINANCE'}))")
            return None
        try:
            return iid if isinstance(iid, InstrumentId) else InstrumentId.from_str(str(iid))
        except ValueError as exc:
            self._log.error(f"{data_type}: {iid!r} is not an instrument id like BTCUSDT-PERP.BINANCE ({exc})")
            return None

    async def _subscribe(self, command: SubscribeData) -> None:
        iid = self._target(command.data_type, command.instrument_id)
        if iid is None:
            return
        data_type = as_subscribed(command.data_type, command.instrument_id)
        self.custom.setdefault((data_type.type, str(iid)), set()).add(data_type)
        self._subscribe_topic(bus_topic(data_type.type, iid), data_type.type,
                              lambda obj: self._handle_data(CustomData(data_type, obj)))

    async def _unsubscribe(self, command: UnsubscribeData) -> None:
        iid = self._target(command.data_type, command.instrument_id)
        data_type = as_subscribed(command.data_type, command.instrument_id)
        if iid is not None and data_type in self.custom.get((data_type.type, str(iid)), set()):
            self.custom[(data_type.type, str(iid))].discard(data_type)
            self.bus.unsubscribe(bus_topic(data_type.type, iid))

    async def _subscribe_funding_rates(self, command: SubscribeFundingRates) -> None:
        self.funding.add(str(command.instrument_id))
        self._subscribe_topic(bus_topic(FundingRateUpdate, command.instrument_id), FundingRateUpdate, self._handle_data)

    async def _unsubscribe_funding_rates(self, command: UnsubscribeFundingRates) -> None:
        if str(command.instrument_id) in self.funding:
            self.funding.discard(str(command.instrument_id))
            self.bus.unsubscribe(bus_topic(FundingRateUpdate, command.instrument_id))

    def _subscribe_topic(self, topic: bytes, data_cls: type, deliver: Callable[[Data], None]) -> None:
        """A topic already subscribed gets no replay from the bus: the new subscriber gets the
        last event seen here instead, so every subscription starts with the current value."""
        if not self.bus.subscribe(topic) and topic in self.bus.last_event:
            for obj in to_nautilus([self.bus.last_event[topic]]):
                if type(obj) is data_cls:
                    deliver(obj)

    async def _subscribe_instruments(self, command) -> None:  # noqa: ANN001
        pass  # every definition the bus publishes goes to the cache (and on_instrument) anyway

    async def _subscribe_instrument(self, command) -> None:  # noqa: ANN001
        pass

    async def _unsubscribe_instruments(self, command) -> None:  # noqa: ANN001
        pass

    async def _unsubscribe_instrument(self, command) -> None:  # noqa: ANN001
        pass

    # -- live events -----------------------------------------------------------------------------

    def _on_events(self, fresh: list[tuple[bytes, AnyEvent]]) -> None:
        try:
            objects = to_nautilus(event for _, event in fresh)
        except Exception as exc:  # noqa: BLE001 - one event the writer's tables refuse must not cost the burst
            self._log.warning(f"burst of {len(fresh)} events not convertible at once ({exc!r}): one at a time")
            objects = []
            for _, event in fresh:
                try:
                    objects += to_nautilus([event])
                except Exception as exc:  # noqa: BLE001
                    self._log.error(f"dropped {event!r}: {exc!r}")
        for obj in objects:
            if isinstance(obj, Instrument):
                self._handle_data(obj)
            elif type(obj) is FundingRateUpdate:
                if str(obj.instrument_id) in self.funding:
                    self._handle_data(obj)
            else:
                for data_type in self.custom.get((type(obj), str(obj.instrument_id)), ()):
                    self._handle_data(CustomData(data_type, obj))

    # -- history (the catalog) -------------------------------------------------------------------

    async def _request(self, request: RequestData) -> None:
        iid = self._target(request.data_type, request.instrument_id)
        if iid is None:
            return
        rows = await self._history(request.data_type.type, iid, request)
        data_type = as_subscribed(request.data_type, request.instrument_id)
        self._handle_data_response(request.data_type, [CustomData(data_type, r) for r in rows], request.id,
                                   request.start, request.end, request.params)

    async def _request_funding_rates(self, request: RequestFundingRates) -> None:
        rows = await self._history(FundingRateUpdate, request.instrument_id, request)
        self._handle_funding_rates(request.instrument_id, rows, request.id, request.start, request.end, request.params)

    async def _history(self, data_cls: type, iid: InstrumentId, request) -> list[Data]:  # noqa: ANN001
        rows = await asyncio.to_thread(history, self.catalog_path, data_cls, str(iid), request.start, request.end,
                                       request.limit or 0)
        self._log.info(f"{len(rows)} {data_cls.__name__} of {iid} from the catalog ({request.start} .. {request.end})")
        return rows

    async def _request_instrument(self, request: RequestInstrument) -> None:
        inst = self._cache.instrument(request.instrument_id)
        if inst is None:
            self._log.error(f"no definition of {request.instrument_id} in the catalog or on the bus (yet)")
            return
        self._handle_instrument(inst, request.id, request.start, request.end, request.params)

    async def _request_instruments(self, request: RequestInstruments) -> None:
        found = [i for i in self._cache.instruments() if i.id.venue == request.venue]
        self._handle_instruments(request.venue, found, request.id, request.start, request.end, request.params)


def as_subscribed(data_type: DataType, instrument_id: InstrumentId | None) -> DataType:
    """The DataType the strategy subscribed with, which the data must carry to reach it (the
    message-bus topic is made from it). Given the instrument as an argument, Nautilus's command
    adds it to the metadata; the strategy's topic was made without it."""
    if instrument_id is None:
        return data_type
    return DataType(data_type.type, {k: v for k, v in data_type.metadata.items() if k != "instrument_id"})
