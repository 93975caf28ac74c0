"""The loopback proxy forwards bytes, cuts (reset + refused) and restores on the same port."""

from __future__ import annotations

import socket

import pytest

from tests.faults.proxy import LoopbackProxy


def test_proxy_forwards_cuts_and_restores() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server, \
            LoopbackProxy(server.getsockname()[1]) as proxy:
        server.settimeout(5)
        client = socket.create_connection(proxy.address, timeout=5)
        conn, _ = server.accept()
        client.sendall(b"ping")
        assert conn.recv(4) == b"ping"
        conn.sendall(b"pong")
        assert client.recv(4) == b"pong"

        proxy.cut()
        with pytest.raises(OSError):  # dropped: reset, or closed
            client.sendall(b"x" * 100_000)
            if not client.recv(1):
                raise ConnectionResetError("closed")
        assert socket.socket().connect_ex(proxy.address) != 0  # refused
        assert proxy.dropped == 2
        client.close()
        conn.close()

        proxy.restore()
        again = socket.create_connection(proxy.address, timeout=5)
        conn, _ = server.accept()
        again.sendall(b"back")
        assert conn.recv(4) == b"back"
        again.close()
        conn.close()
