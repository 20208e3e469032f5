"""A fault-injecting HTTP proxy in front of an S3 server (moto), for the tests that upload under faults.

Clients are pointed at the proxy's endpoint instead of the server's. Requests pass through unchanged (the Host
header too, so signatures still match), except those the fault plan picks:

    "error"    the request is not forwarded; the client gets 503 SlowDown (S3's throttling answer)
    "reset"    the request is not forwarded; the connection is reset without an answer
    "lost"     the request is forwarded and done by the server, then the connection is reset: the client cannot
               know the write happened (a retry must be harmless)
    "slow"     the answer is held for `slow_s` seconds (longer than the client's read timeout: a timeout)
    "hang"     the request is held until the proxy is closed (a client that is killed meanwhile)

The plan: every `every`-th request that `match`es gets the next fault of `kinds` in turn, but never two attempts in
a row at the same method and path, so that a client that retries always gets through; or `outage()`: every
matching request gets 500 InternalError until `restore()`. `counts` says what was injected.
"""
from __future__ import annotations

import http.client
import socket
import struct
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
             b"<Message>Please reduce your request rate.</Message></Error>")
INTERNAL = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
            b"<Message>We encountered an internal error. Please try again.</Message></Error>")


def writes(method: str, path: str) -> bool:
    """Requests that upload or complete an upload: PUT and POST."""
    return method in ("PUT", "POST")


class FaultyProxy:
    def __init__(self, upstream: str, every: int = 3, kinds=("error", "reset", "lost", "slow"), match=writes,
                 slow_s: float = 4.0):
        self.upstream = urlsplit(upstream)
        self.every, self.kinds, self.match, self.slow_s = every, tuple(kinds), match, slow_s
        self.counts: Counter = Counter()
        self.requests = 0
        self._lock = threading.Lock()
        self._matched = 0
        self._last_faulted: tuple | None = None
        self._outage = False
        self._hang: str | None = None     # a path fragment whose next write is held
        self.held = threading.Event()      # set once a request is being held
        self._release = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _reset(self) -> None:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()

            def _relay(self) -> None:
                body = self._body()
                fault = proxy._fault(self.command, self.path)
                if fault == "hang":
                    proxy.held.set()
                    proxy._release.wait()
                    self._reset()
                    return
                if fault in ("error", "down"):
                    status, text = (503, SLOW_DOWN) if fault == "error" else (500, INTERNAL)
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(text)))
                    self.end_headers()
                    self.wfile.write(text)
                    return
                if fault == "reset":
                    self._reset()
                    return
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("transfer-encoding", "expect")}
                headers["Content-Length"] = str(len(body))
                conn.request(self.command, self.path, body=body if self.command not in ("GET", "HEAD") or body
                             else None, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                conn.close()
                if fault == "lost":
                    self._reset()
                    return
                if fault == "slow":
                    time.sleep(proxy.slow_s)
                self.send_response(answer.status, answer.reason)
                for k, v in answer.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                # a HEAD answer has no body, but its Content-Length is the object's size
                self.send_header("Content-Length", answer.getheader("Content-Length", "0") if self.command == "HEAD"
                                 else str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):   # a client that gave up on a held answer
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _fault(self, method: str, path: str) -> str | None:
        with self._lock:
            self.requests += 1
            if not self.match(method, path):
                return None
            if self._hang and self._hang in path and method == "PUT":
                self._hang = None
                self.counts["hang"] += 1
                return "hang"
            if self._outage:
                self.counts["outage"] += 1
                return "down"
            self._matched += 1
            target = (method, path)
            if self._matched % self.every or self._last_faulted == target:
                self._last_faulted = None
                return None
            kind = self.kinds[sum(self.counts[k] for k in self.kinds) % len(self.kinds)]
            self.counts[kind] += 1
            self._last_faulted = target
            return kind

    def outage(self) -> None:
        """From now on every matching request fails, until restore()."""
        self._outage = True

    def restore(self) -> None:
        self._outage = False

    def hang_on(self, fragment: str) -> None:
        """Hold the next PUT whose path contains `fragment` until close(); `held` is set once it is held."""
        self._hang = fragment

    @property
    def injected(self) -> int:
        return sum(self.counts.values())

    def close(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()
