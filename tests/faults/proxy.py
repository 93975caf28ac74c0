"""A loopback TCP proxy that can cut a server off: the network fault of the broker-outage test.

:class:`LoopbackProxy` listens on 127.0.0.1 and forwards every connection to a target port,
byte for byte, from an asyncio loop in its own thread (so a test drives it with plain calls).
:meth:`LoopbackProxy.cut` drops every open connection (a TCP reset) and stops listening, so new
connections are refused; :meth:`LoopbackProxy.restore` listens again on the same port. A Kafka
broker behind it must advertise the proxy's address, or its clients would bypass the proxy
after their first metadata request.

"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any

from streamrec.core.embedded import LOOPBACK, free_port

CHUNK = 64 * 1024


class LoopbackProxy:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target_port``; can cut and restore."""

    def __init__(self, target_port: int, port: int | None = None) -> None:
        self.target_port = target_port
        self.port = port or free_port()
        self.accepted = 0  # connections forwarded
        self.dropped = 0  # connections reset by cut()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="loopback-proxy",
                                        daemon=True)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    @property
    def address(self) -> tuple[str, int]:
        return LOOPBACK, self.port

    @property
    def url(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    # --- what a test calls (from its own thread) -----------------------------------------------
    def start(self) -> LoopbackProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def cut(self) -> None:
        """Reset every open connection and refuse new ones until :meth:`restore`."""
        self._call(self._cut())

    def restore(self) -> None:
        """Accept connections again on the same port."""
        self._call(self._listen())

    def stop(self) -> None:
        if self._thread.is_alive():
            self._call(self._cut())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> LoopbackProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    # --- the proxy's loop --------------------------------------------------------------------
    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._forward, LOOPBACK, self.port)

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._open):
            writer.transport.abort()  # RST: the peer sees the connection reset
            self.dropped += 1
        self._open.clear()

    async def _forward(self, client_r: asyncio.StreamReader,
                       client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(LOOPBACK, self.target_port)
        except OSError:
            client_w.transport.abort()
            return
        self.accepted += 1
        self._open.update((client_w, server_w))
        try:
            await asyncio.gather(_pipe(client_r, server_w), _pipe(server_r, client_w))
        finally:
            for writer in (client_w, server_w):
                self._open.discard(writer)
                writer.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    # one direction ended: end the other one too
    writer.transport.abort()

