"""A loopback TCP proxy that cuts connections mid-stream: a flaky network for the interop tests.

Each of the first `cuts` connections that carries more than `cut_after` bytes from the
client is closed abruptly (both directions) at that point; later ones pass untouched.
"""
from __future__ import annotations

import socket
import threading


class CuttingProxy:
    def __init__(self, target_port: int, *, cut_after: int, cuts: int):
        self.target = ("127.0.0.1", target_port)
        self.cut_after = cut_after
        self.max_cuts = cuts
        self.cuts_done = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop = True
        self._listener.close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _accept(self):
        while not self._stop:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket):
        upstream = socket.create_connection(self.target)
        state = {"closed": False}

        def close_both():
            state["closed"] = True
            for s in (client, upstream):
                try:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    s.close()
                except OSError:
                    pass

        def up():
            sent = 0
            may_cut = True
            while True:
                try:
                    data = client.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                if may_cut and sent + len(data) > self.cut_after:
                    with self._lock:
                        may_cut = self.cuts_done < self.max_cuts
                        if may_cut:
                            self.cuts_done += 1
                    if may_cut:
                        try:
                            upstream.sendall(data[: self.cut_after - sent])
                        except OSError:
                            pass
                        close_both()
                        return
                try:
                    upstream.sendall(data)
                except OSError:
                    break
                sent += len(data)
            try:
                upstream.shutdown(socket.SHUT_WR)
            except OSError:
                pass

        def down():
            while True:
                try:
                    data = upstream.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                try:
                    client.sendall(data)
                except OSError:
                    break
            if not state["closed"]:
                try:
                    client.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

        t = threading.Thread(target=down, daemon=True)
        t.start()
        up()
        t.join()
        for s in (client, upstream):
            try:
                s.close()
            except OSError:
                pass
