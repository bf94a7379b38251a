"""The live bus sends nothing for topics no tap subscribes to (actors/taps_cache.py): real
ZeroMQ taps come and go (closed, or killed with -9) and each one gets its replay and then every
message of its topics, whatever the others do."""

import asyncio
import subprocess
import sys
import time
import uuid

import zmq
import zmq.asyncio

from actors.taps_cache import LastValueBus

TOPIC = b"liq.BYBIT.BTCUSDT-LINEAR.BYBIT"


async def until(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def received(sock, n: int, timeout_s: float = 5.0) -> list[list[bytes]]:
    out = []
    while len(out) < n and await sock.poll(int(timeout_s * 1000)):
        out.append(await sock.recv_multipart())
    return out


def test_taps_get_every_message_of_their_topics_while_the_bus_follows_who_listens():
    endpoint = f"ipc://@taps-sub-{uuid.uuid4().hex[:8]}"

    async def main():
        ctx = zmq.asyncio.Context()
        ctx.setsockopt(zmq.LINGER, 0)  # a failed assertion must not hang the context's end
        bus = LastValueBus(ctx, endpoint)
        serve = asyncio.create_task(bus.serve())
        bus.publish([(TOPIC, b"0")])
        assert not bus.listening()  # nobody: nothing sent, the last value kept
        first, second = ctx.socket(zmq.SUB), ctx.socket(zmq.SUB)
        for sock in (first, second):
            sock.setsockopt(zmq.SUBSCRIBE, b"liq.BYBIT.")
            sock.connect(endpoint)
        await until(lambda: bus.subscriptions == 2)
        assert bus.listening()
        # The first message each gets is the replay, then every one published. XPUB sends a replay to
        # every tap of the prefix that is attached by then: once or twice (the other tap's), never none.
        for i in range(1, 101):
            bus.publish([(TOPIC, str(i).encode()), (b"oi.BYBIT.BTCUSDT-LINEAR.BYBIT", b"not subscribed")])
        for sock in (first, second):
            got = [payload for _, payload in await received(sock, 102)]
            replays = len(got) - 100
            assert 1 <= replays <= 2 and got == [b"0"] * replays + [str(i).encode() for i in range(1, 101)], got[:5]
        # One of two taps of a prefix goes: the other still gets everything.
        second.close(linger=0)
        deadline = time.monotonic() + 0.5  # while libzmq takes the close in
        while time.monotonic() < deadline:
            bus.publish([(TOPIC, b"101")])
            assert await received(first, 1) == [[TOPIC, b"101"]]
        assert bus.listening()
        # A tap killed with -9 (another process) and then the last one closed: nobody listens.
        killed = subprocess.Popen([sys.executable, "-c", "import sys, time, zmq; s = zmq.Context().socket(zmq.SUB); "
                                   "s.setsockopt(zmq.SUBSCRIBE, b'gap.'); s.connect(sys.argv[1]); time.sleep(60)", endpoint])
        await until(lambda: b"gap." in bus.prefixes)
        killed.kill()
        killed.wait()
        first.close(linger=0)
        await until(lambda: not bus.listening())
        bus.publish([(TOPIC, b"102")])  # kept as the last value, sent to nobody
        late = ctx.socket(zmq.SUB)
        late.setsockopt(zmq.SUBSCRIBE, b"")
        late.connect(endpoint)
        await until(lambda: bus.listening())
        assert sorted(await received(late, 2)) == [[TOPIC, b"102"], [b"oi.BYBIT.BTCUSDT-LINEAR.BYBIT", b"not subscribed"]]
        serve.cancel()
        late.close(linger=0)
        bus.close()
        ctx.term()

    asyncio.run(main())
