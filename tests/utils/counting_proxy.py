# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A loopback HTTP proxy in front of one Consul that counts requests: one copy for the tests and the bench.

Bodies are forwarded, never stored or logged (they can carry peering tokens). A test can make
it lose an answer after Consul applied the request (drop_answer), as a broken link would.
"""

from __future__ import annotations

import http.client
import http.server
import socket
import threading
from collections import Counter
from urllib.parse import urlsplit


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        path = self.path.split("?", 1)[0]
        with self.server.lock:
            self.server.counts[(self.command, path)] += 1
        canned = self.server.answer(self.command, path) if self.server.answer is not None else None
        if canned is not None:
            # The test answers this one itself (a simulated failure); Consul never sees it.
            status, text = canned
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        headers = {}
        for h in ("X-Consul-Token", "Content-Type", "User-Agent"):
            if self.headers.get(h):
                headers[h] = self.headers[h]
        conn = http.client.HTTPConnection(self.server.target_host, self.server.target_port, timeout=60)
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            status, data, ctype = resp.status, resp.read(), resp.getheader("Content-Type", "")
        finally:
            conn.close()
        drop = self.server.drop_answer
        if drop is not None and drop(self.command, path):
            # Consul applied the request; its answer never reaches the client.
            with self.server.lock:
                self.server.dropped += 1
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = _forward


class CountingProxy:
    """Start with start(); url is the proxy's address; counts is a Counter of (method, path)."""

    def __init__(self, target, drop_answer=None, answer=None):
        """drop_answer(method, path) -> bool: forward that request, then close without answering.
        answer(method, path) -> (status, text) or None: answer that request without forwarding it."""
        parts = urlsplit(target)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.target_host = parts.hostname
        self.server.target_port = parts.port
        self.server.counts = Counter()
        self.server.lock = threading.Lock()
        self.server.drop_answer = drop_answer
        self.server.answer = answer
        self.server.dropped = 0
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    @property
    def counts(self):
        return self.server.counts

    def snapshot(self):
        with self.server.lock:
            return Counter(self.server.counts)

    def reset(self):
        with self.server.lock:
            self.server.counts.clear()

    def totals(self):
        """(requests, writes): writes are every method but GET/HEAD."""
        snap = self.snapshot()
        reqs = sum(snap.values())
        writes = sum(n for (m, _p), n in snap.items() if m not in ("GET", "HEAD"))
        return reqs, writes

    def total(self, method=None):
        return sum(n for (m, _p), n in self.snapshot().items() if method is None or m == method)

    def writes(self):
        return self.totals()[1]

    @property
    def dropped(self):
        return self.server.dropped
