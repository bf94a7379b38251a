"""A loopback venue that answers recorded payloads (`tests/fixtures/real`), for golden tests.

The replay emulator (`emulator/replay.py`) matches a request on its exact query and body, as the
client that made the recording sent them; these payloads were recorded by others (ccxt, Nautilus,
the venues' docs), so an answer is picked by endpoint only: the method, the path and, for
Hyperliquid's `POST /info`, the body's `type`. Each endpoint serves its answers in order and then
keeps giving the last one. Every request is kept in `requests`, the venue side's record of what
the client asked.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from emulator.common import listen

Route = tuple[str, str]  # ("GET", "/fapi/v1/openInterest") or ("POST", "/info metaAndAssetCtxs")


@dataclass
class RecordedVenue:
    answers: dict[Route, list[Any]]
    requests: list[tuple[str, str, dict]] = field(default_factory=list)  # (method, route path, query/body)
    url: str = ""
    _served: dict[Route, int] = field(default_factory=lambda: defaultdict(int))
    _runners: list[web.AppRunner] = field(default_factory=list)

    async def start(self) -> RecordedVenue:
        app = web.Application()
        app.router.add_get("/_emulator/ratelimit", self._limits)
        app.router.add_route("*", "/{tail:.*}", self._answer)
        self.url = await listen(self._runners, app, "127.0.0.1", 0)
        return self

    async def close(self) -> None:
        for runner in self._runners:
            await runner.cleanup()

    def asked(self, path: str) -> list[dict]:
        """The query (or JSON body) of every request of one route path, in order."""
        return [args for _, p, args in self.requests if p == path]

    async def _limits(self, request: web.Request) -> web.Response:
        # read by the project's sandbox client (venues/budget.py): no pacing against recorded answers
        return web.json_response({"enabled": False, "scale": 1.0})

    async def _answer(self, request: web.Request) -> web.Response:
        path, args = request.path, dict(request.query)
        if request.method == "POST" and path == "/info":
            args = await request.json()
            path = f"/info {args.get('type')}"
        self.requests.append((request.method, path, args))
        route = (request.method, path)
        if route not in self.answers:
            return web.json_response({"error": f"no recorded answer for {route}"}, status=404)
        answers = self.answers[route]
        body = answers[min(self._served[route], len(answers) - 1)]
        self._served[route] += 1
        return web.Response(text=json.dumps(body), content_type="application/json")
