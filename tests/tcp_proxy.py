"""A TCP proxy for the tests, between a client and the real broker, that can misbehave on cue.

It also stands for a broker node that is lost and comes back (`down`, `up`): several proxies to
the one broker make a client's list of nodes, each of which can go away on its own.

What a broker under a memory or disk alarm, under flow control, or behind a congested link looks
like from the client: its frames are held (`hold`), or the connection drops with a publish in
flight, before the frames reach the broker (`drop_next`) or after, with the broker's answer
swallowed (`cut_after`). Toxiproxy does this too, but it is a Go binary that no registry reachable
here ships; the few lines below need nothing but asyncio.

It runs its own event loop in a thread, so a test (or an app under test, in its own loop) can
use it from anywhere; the knobs are plain attributes read on each chunk.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager


class Proxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.hold_s = 0.0  # client→broker chunks are delivered this much later (order kept)
        self.drop_next = False  # the next client chunk is thrown away and the connection closed
        self.cut_after: float | None = None  # on the next client chunk: forward, swallow answers, close after this
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tcp-proxy", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    def start(self) -> Proxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        async def shut() -> None:
            if self._server is not None:
                self._server.close()
            for writer in list(self._writers):
                writer.close()
            pumps = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            self._loop.stop()

        asyncio.run_coroutine_threadsafe(shut(), self._loop)
        self._thread.join(10)
        self._loop.close()

    @property
    def connections(self) -> int:
        """Client connections open through the proxy now."""
        return len(self._writers) // 2

    def down(self) -> None:
        """A node lost: every connection through it closed, and new ones refused (the port stops
        listening), until `up`."""

        async def close() -> None:
            server, self._server = self._server, None
            if server is not None:
                server.close()
            for writer in list(self._writers):
                writer.close()
            if server is not None:
                await server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)

    def up(self) -> None:
        """The node back: listening again on the same port."""

        async def listen() -> None:
            if self._server is None:
                self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

        asyncio.run_coroutine_threadsafe(listen(), self._loop).result(10)

    def url(self, vhost_path: str) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/{vhost_path}"

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            broker_reader, broker_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_writer.close()
            return
        self._writers.update({client_writer, broker_writer})
        answers_flow = asyncio.Event()
        answers_flow.set()
        closing = False

        def close_both() -> None:
            client_writer.close()
            broker_writer.close()

        async def upstream() -> None:
            nonlocal closing
            # Chunks wait in order for their release time, so holding never reorders frames.
            pending: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

            async def deliver() -> None:
                while True:
                    release, chunk = await pending.get()
                    await asyncio.sleep(max(0.0, release - time.monotonic()))
                    broker_writer.write(chunk)
                    await broker_writer.drain()

            delivering = asyncio.create_task(deliver())
            try:
                while chunk := await client_reader.read(65536):
                    if closing:
                        continue
                    if self.drop_next:
                        self.drop_next, closing = False, True
                        close_both()
                        return
                    if self.cut_after is not None and answers_flow.is_set():
                        # The client's frames still flow; only the broker's answers are lost.
                        delay, self.cut_after = self.cut_after, None
                        answers_flow.clear()
                        self._loop.call_later(delay, close_both)
                    pending.put_nowait((time.monotonic() + self.hold_s, chunk))
            finally:
                # Let what was accepted reach the broker before the pump stops.
                while not pending.empty() and not broker_writer.is_closing():
                    await asyncio.sleep(0.05)
                delivering.cancel()
                if not closing:
                    close_both()

        async def downstream() -> None:
            while chunk := await broker_reader.read(65536):
                if answers_flow.is_set():
                    client_writer.write(chunk)
                    await client_writer.drain()

        try:
            await asyncio.gather(upstream(), downstream(), return_exceptions=True)
        finally:
            close_both()
            self._writers.difference_update({client_writer, broker_writer})


@contextmanager
def proxy_to(host: str, port: int) -> Iterator[Proxy]:
    proxy = Proxy(host, port).start()
    try:
        yield proxy
    finally:
        proxy.stop()


@contextmanager
def proxy_nodes(prefix: str, count: int = 3) -> Iterator[tuple[list[Proxy], str, str]]:
    """`count` "nodes" (proxies to the local broker) of one fresh vhost, the `AMQP_URL` list naming
    them, and the broker's own URL (for a test's publishes, which no node loss touches)."""
    from tests.support import isolated_vhost

    with isolated_vhost(prefix) as url, ExitStack() as stack:
        nodes = [stack.enter_context(proxy_to("127.0.0.1", 5672)) for _ in range(count)]
        path = url.rsplit("/", 1)[1]
        yield nodes, ",".join(node.url(path) for node in nodes), url
