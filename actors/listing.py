"""`symbols: all`: the markets a collector collects follow the venue's listings.

Every perpetual the venue lists and trades is collected (the adapter's `collectable`: each venue
says what that means), except the topology's `exclude` list. Every `instruments_interval_s` the
collector reloads the venue's markets and `Listing.refresh` compares them with what it collects:

- a new listing joins the collector's markets (its OI, funding and liquidations start; the
  collector is told through `on_change`) and its definition is sent at once;
- a perpetual that is no longer listed, or no longer trading, leaves them: collection of it
  stops cleanly, and the collector records its end (`on_change`: a Gap per stream, from the last
  refresh that still listed it to the one that did not, reason "delisted");
- a definition the venue changed (tick size, limits) is sent again; an unchanged one is not
  (at 60 s and 1,200 perpetuals, re-sending all of them would be 1,700,000 rows a day).
"""

from collections.abc import Callable
from typing import Any

import msgspec

from messages.events import AnyEvent
from venues.base import Market, UnknownSymbol, VenueAdapter, now_ns

# (listed, delisted, since_ns): markets that joined and left, and the last time those that left were listed
OnChange = Callable[[list[Market], list[Market], int], None]


def _unstamped(event: AnyEvent) -> AnyEvent:
    """The event without its times: two definitions are the same when all else is."""
    return msgspec.structs.replace(event, ts_event=0, ts_recv=0)


class Listing:
    """What `symbols: all` collects of one venue (see module doc)."""

    def __init__(self, adapter: VenueAdapter, exclude: list[str], log: Any) -> None:
        self.adapter, self.exclude, self.log = adapter, exclude, log
        self.sent: dict[str, AnyEvent] = {}  # ccxt symbol -> the definition last sent (unstamped)
        self.listed_ns = now_ns()  # the last refresh: everything collected was listed then
        self._unknown_excludes: set[str] = set()

    def select(self, markets: dict[str, Market]) -> list[Market]:
        """The markets to collect, by symbol: collectable, minus the excluded ones."""
        wanted = self.adapter.collectable(markets)
        for text in self.exclude:
            try:
                wanted.pop(self.adapter.resolve(markets, text)["symbol"], None)
                self._unknown_excludes.discard(text)
            except UnknownSymbol as exc:
                if text not in self._unknown_excludes:  # said once, not every refresh
                    self._unknown_excludes.add(text)
                    self.log.warning("exclude: {} (nothing to exclude)", exc)
        return [wanted[s] for s in sorted(wanted)]

    def refresh(self, collected: list[Market], markets: dict[str, Market], on_change: OnChange) -> list[AnyEvent]:
        """Bring `collected` (the collector's live list, changed in place) to the venue's `markets`;
        returns the definitions to send (new or changed)."""
        ts = now_ns()
        wanted = {m["symbol"]: m for m in self.select(markets)}
        have = {m["symbol"] for m in collected}
        listed = [m for s, m in wanted.items() if s not in have]
        delisted = [m for m in collected if m["symbol"] not in wanted]
        collected[:] = [wanted[m["symbol"]] for m in collected if m["symbol"] in wanted] + listed  # fresh market dicts
        for m in delisted:
            self.sent.pop(m["symbol"], None)
            self.log.warning("{} is no longer listed as a trading perpetual: collection of {} ended (gap recorded from "
                             "the last refresh that listed it)", self.adapter.raw_symbol(m), self.adapter.instrument_id(m))
        for m in listed:
            self.log.warning("{} is listed now: collecting {}", self.adapter.raw_symbol(m), self.adapter.instrument_id(m))
        if listed or delisted:
            on_change(listed, delisted, self.listed_ns)
        self.listed_ns = ts
        return self.definitions(collected, ts)

    def definitions(self, collected: list[Market], ts: int) -> list[AnyEvent]:
        """The definitions not sent yet, or changed since."""
        out = []
        for m in collected:
            event = self.adapter.instrument_event(m, ts)
            plain = _unstamped(event)
            if self.sent.get(m["symbol"]) != plain:
                self.sent[m["symbol"]] = plain
                out.append(event)
        return out
