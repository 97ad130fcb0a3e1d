#!/usr/bin/env python3
"""HTTP/1.1 reverse proxy that injects faults, for meteor's end-to-end tests.

It sits between meteor and an OpenAI-compatible server on loopback. Python stdlib only, so it
runs with any python3 as a script and imports into the tests as a class.

    python tests/e2e/fault_proxy.py --upstream http://127.0.0.1:8080 --listen 127.0.0.1:0 \\
        --port-file proxy.port --log proxy.jsonl --seed 7 --rate 0.3 \\
        [--faults delay,429,500,drop,truncate,badjson] [--delay-s 5] [--retry-after 1]

    from e2e.fault_proxy import FaultProxy
    with FaultProxy("http://127.0.0.1:8080", seed=7, rate=0.3, log_path="proxy.jsonl") as proxy:
        proxy.url            # "http://127.0.0.1:PORT"; meteor's base URL is proxy.url + "/v1"
        proxy.records()      # the log lines so far, as dicts

Each request (headers plus a Content-Length or chunked body) gets an ordinal n = 1, 2, ... in the
order its headers were read. Whether request n is faulted, and with which fault, depends only on
(seed, n, rate, faults) -- see fault_for() -- so a seed gives the same fault sequence on every
run. With probability `rate` one fault is drawn uniformly from the enabled ones:

  delay     hold the request delay_s before forwarding it, then forward and relay the answer;
            a client that hangs up during the hold ends it at once and the request is never
            sent, so an abandoned request costs the upstream nothing. A delay_s far beyond the
            client's timeout makes the fault a certain timeout, however fast the machine
  429       answer 429 with `Retry-After: <retry_after>` and an OpenAI-style JSON error; not forwarded
  500       answer 500 with a JSON error; not forwarded
  drop      close the connection without any response; not forwarded
  truncate  forward, then send the upstream's headers with the real Content-Length but only the
            first half of the body, and close
  badjson   forward, then answer 200 application/json with the body replaced by invalid JSON
            (`{"choices": [`) and a matching Content-Length

Otherwise the request is forwarded as it came (method, path, headers including Authorization,
body; hop-by-hop headers dropped, Host rewritten to the upstream) and the upstream's answer is
relayed. The proxy reads the whole upstream answer before relaying it (a streamed answer arrives
in one piece) and every response carries `Connection: close`: one request per connection.

The log has one JSON object per request, written and flushed when the request is done (lines of
concurrent requests may appear out of n order):

  n               request ordinal (1-based)
  method, path    as received
  body_sha256     SHA-256 (hex) of the request body
  fault           the injected fault, or null
  forwarded       whether the request was sent to the upstream
  upstream_status the upstream's status code, or null when it was not forwarded (or failed)
  client_status   the status the client was sent, or null when no status line was sent (drop,
                  a delay the client gave up on)
  delivered       whether the upstream's answer reached the client complete: true only for a
                  faithfully relayed answer (also after a delay the client waited out); false for
                  every injected 429/500/drop/truncate/badjson and when writing to the client failed
  error           what went wrong talking to the upstream or the client, or null
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import http.server
import json
import os
import random
import select
import signal
import socket
import socketserver
import sys
import threading
import time
import urllib.parse

ALL_FAULTS = ("delay", "429", "500", "drop", "truncate", "badjson")
BAD_JSON = b'{"choices": ['

# Hop-by-hop headers (RFC 9110 7.6.1) and the ones the proxy sets itself.
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
}


def parse_faults(spec) -> tuple:
    """'delay,429' or an iterable of names -> tuple of fault names (checked, order kept)."""
    if isinstance(spec, str):
        names = [s.strip() for s in spec.split(",") if s.strip()]
    else:
        names = [str(s) for s in spec]
    bad = [s for s in names if s not in ALL_FAULTS]
    if bad:
        raise ValueError(f"unknown fault(s) {', '.join(bad)} (known: {', '.join(ALL_FAULTS)})")
    if not names:
        raise ValueError("no fault enabled")
    return tuple(names)


def fault_for(seed: int, n: int, rate: float, faults) -> str | None:
    """The fault for request n (1-based) under this seed: a pure function, so reproducible."""
    rng = random.Random(f"meteor-fault-proxy:{seed}:{n}")
    u = rng.random()
    k = rng.randrange(len(faults))
    return faults[k] if u < rate else None


def _json_error(status: int, message: str, etype: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": etype, "code": status}}).encode()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # needed for `Expect: 100-continue` (libcurl sends it)
    server_version = "meteor-fault-proxy"
    server: "_Server"

    def log_message(self, format, *args):  # noqa: A002 - silence the default stderr log
        pass

    def _dispatch(self):
        self.close_connection = True
        self.server.proxy._handle(self)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _dispatch


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    # TCPServer, not HTTPServer: HTTPServer.server_bind looks up the host's FQDN (DNS).
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64
    proxy: "FaultProxy"


class FaultProxy:
    """The proxy. start()/stop() or use as a context manager; it serves from a daemon thread."""

    def __init__(
        self,
        upstream: str,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        *,
        seed: int = 0,
        rate: float = 0.0,
        faults=ALL_FAULTS,
        delay_s: float = 5.0,
        retry_after: int | str = 1,
        log_path: str | os.PathLike | None = None,
        upstream_timeout: float = 600.0,
    ):
        u = urllib.parse.urlsplit(upstream)
        if u.scheme != "http" or not u.hostname:
            raise ValueError(f"upstream must be http://HOST:PORT[/prefix], got {upstream!r}")
        self.upstream = upstream
        self._up_host = u.hostname
        self._up_port = u.port or 80
        self._up_netloc = u.netloc
        self._up_prefix = u.path.rstrip("/")
        self.listen = listen
        self.seed = int(seed)
        self.rate = float(rate)
        self.faults = parse_faults(faults)
        self.delay_s = float(delay_s)
        self.retry_after = str(retry_after)
        self.upstream_timeout = float(upstream_timeout)
        self.log_path = os.fspath(log_path) if log_path is not None else None
        self._lock = threading.Lock()
        self._n = 0
        self._records: list[dict] = []
        self._log = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._serving = False

    # -- life cycle -------------------------------------------------------------------------
    def bind(self) -> "FaultProxy":
        """Open the listening socket (port known from then on) without serving yet."""
        if self._server is None:
            if self.log_path is not None:
                self._log = open(self.log_path, "a", encoding="utf-8")
            self._server = _Server(self.listen, _Handler)
            self._server.proxy = self
        return self

    def start(self) -> "FaultProxy":
        """Serve from a daemon thread; returns self."""
        self.bind()
        self._serving = True  # before the thread runs: a stop() right away must still shut it down
        self._thread = threading.Thread(target=self.serve_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self):
        """Serve in this thread until stop() (from another thread) or an exception."""
        server = self.bind()._server
        self._serving = True
        server.serve_forever(poll_interval=0.1)

    def stop(self):
        """Stop serving, close the socket and the log. Requests in flight finish unlogged in the file."""
        if self._server is not None:
            if self._serving:
                self._server.shutdown()  # returns at once if serve_forever already ended
                self._serving = False
            if self._thread is not None:
                self._thread.join(10)
                self._thread = None
            self._server.server_close()
            self._server = None
        with self._lock:
            if self._log is not None:
                self._log.close()
                self._log = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("proxy not started")
        return self._server.server_address[1]

    @property
    def host(self) -> str:
        return self._server.server_address[0] if self._server else self.listen[0]

    @property
    def url(self) -> str:
        """http://HOST:PORT of the proxy (append the API prefix, e.g. "/v1", yourself)."""
        return f"http://{self.host}:{self.port}"

    def configure(self, *, rate: float | None = None, faults=None, delay_s: float | None = None,
                  retry_after=None, seed: int | None = None):
        """Change settings for the requests that arrive from now on."""
        with self._lock:
            if rate is not None:
                self.rate = float(rate)
            if faults is not None:
                self.faults = parse_faults(faults)
            if delay_s is not None:
                self.delay_s = float(delay_s)
            if retry_after is not None:
                self.retry_after = str(retry_after)
            if seed is not None:
                self.seed = int(seed)

    def records(self) -> list[dict]:
        """The log records written so far (in completion order)."""
        with self._lock:
            return [dict(r) for r in self._records]

    # -- one request --------------------------------------------------------------------------
    def _handle(self, h: _Handler):
        body, err = self._read_body(h)
        with self._lock:
            self._n += 1
            n = self._n
            fault = fault_for(self.seed, n, self.rate, self.faults)
            delay_s, retry_after = self.delay_s, self.retry_after
        rec = {
            "n": n,
            "method": h.command,
            "path": h.path,
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "fault": fault,
            "forwarded": False,
            "upstream_status": None,
            "client_status": None,
            "delivered": False,
            "error": err,
        }
        try:
            if err is not None:  # unreadable request: answer 400, never forward
                self._send(h, rec, 400, "Bad Request",
                           [("Content-Type", "application/json")],
                           _json_error(400, err, "invalid_request_error"))
            elif fault == "429":
                self._send(h, rec, 429, "Too Many Requests",
                           [("Content-Type", "application/json"), ("Retry-After", retry_after)],
                           _json_error(429, "injected rate limit (fault proxy)", "rate_limit_error"))
            elif fault == "500":
                self._send(h, rec, 500, "Internal Server Error",
                           [("Content-Type", "application/json")],
                           _json_error(500, "injected server error (fault proxy)", "server_error"))
            elif fault == "drop":
                pass  # close without a byte
            else:
                if fault == "delay" and not self._hold(h, delay_s):
                    rec["error"] = "client disconnected during the delay"
                    return
                up = self._forward(h, body, rec)
                if up is None:
                    self._send(h, rec, 502, "Bad Gateway", [("Content-Type", "application/json")],
                               _json_error(502, f"fault proxy: upstream failed: {rec['error']}",
                                           "server_error"))
                    return
                status, reason, headers, data = up
                if fault == "truncate":
                    self._send(h, rec, status, reason, headers, data, cut=len(data) // 2)
                elif fault == "badjson":
                    headers = [(k, v) for k, v in headers
                               if k.lower() not in ("content-type", "content-encoding")]
                    self._send(h, rec, 200, "OK", headers + [("Content-Type", "application/json")],
                               BAD_JSON)
                else:
                    if self._send(h, rec, status, reason, headers, data):
                        rec["delivered"] = True
        finally:
            self._write_record(rec)

    def _read_body(self, h: _Handler) -> tuple[bytes, str | None]:
        try:
            te = (h.headers.get("Transfer-Encoding") or "").lower()
            if "chunked" in te:
                parts = []
                while True:
                    size = int(h.rfile.readline(65537).split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while h.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        break
                    parts.append(h.rfile.read(size))
                    h.rfile.readline(65537)
                return b"".join(parts), None
            length = int(h.headers.get("Content-Length") or 0)
            body = h.rfile.read(length) if length > 0 else b""
            if len(body) != length:
                return body, f"request body cut short ({len(body)} of {length} bytes)"
            return body, None
        except (ValueError, OSError) as e:
            return b"", f"unreadable request body: {e}"

    @staticmethod
    def _hold(h: _Handler, seconds: float) -> bool:
        """Wait `seconds` unless the client hangs up first; True if it is still connected.

        After the request was read the client sends nothing more, so the socket turning
        readable means EOF or a reset: the wait ends there instead of running its course."""
        sock = h.connection
        deadline = time.monotonic() + seconds
        try:
            while True:
                left = deadline - time.monotonic()
                readable, _, _ = select.select([sock], [], [], max(left, 0))
                if readable:
                    if sock.recv(1, socket.MSG_PEEK) == b"":
                        return False
                    time.sleep(max(deadline - time.monotonic(), 0))  # pipelined bytes: not a hang-up
                    return True
                if left <= 0:
                    return True
        except OSError:
            return False

    def _forward(self, h: _Handler, body: bytes, rec: dict):
        headers = [(k, v) for k, v in h.headers.items()
                   if k.lower() not in _HOP_BY_HOP and k.lower() not in ("host", "content-length")]
        headers.append(("Host", self._up_netloc))
        if body or h.command in ("POST", "PUT", "PATCH"):
            headers.append(("Content-Length", str(len(body))))
        headers.append(("Connection", "close"))
        conn = http.client.HTTPConnection(self._up_host, self._up_port, timeout=self.upstream_timeout)
        try:
            conn.putrequest(h.command, self._up_prefix + h.path, skip_host=True, skip_accept_encoding=True)
            for k, v in headers:
                conn.putheader(k, v)
            conn.endheaders(body if body else None)
            rec["forwarded"] = True
            resp = conn.getresponse()
            rec["upstream_status"] = resp.status
            data = resp.read()
            out = [(k, v) for k, v in resp.getheaders()
                   if k.lower() not in _HOP_BY_HOP and k.lower() not in ("content-length", "server", "date")]
            return resp.status, resp.reason, out, data
        except (OSError, http.client.HTTPException) as e:
            rec["error"] = f"upstream: {type(e).__name__}: {e}"
            return None
        finally:
            conn.close()

    @staticmethod
    def _send(h: _Handler, rec: dict, status: int, reason: str, headers, body: bytes, cut=None) -> bool:
        """Write a whole response (or, with cut, all headers and body[:cut]); True if it all went out."""
        head = [f"HTTP/1.1 {status} {reason}"]
        head += [f"{k}: {v}" for k, v in headers]
        head += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
        payload = "\r\n".join(head).encode("latin-1") + (body if cut is None else body[:cut])
        if h.command == "HEAD":
            payload = "\r\n".join(head).encode("latin-1")
        try:
            h.wfile.write(payload)
            h.wfile.flush()
            rec["client_status"] = status
            return True
        except OSError as e:
            rec["error"] = f"client: {type(e).__name__}: {e}"
            return False

    def _write_record(self, rec: dict):
        line = json.dumps(rec, sort_keys=True)
        with self._lock:
            self._records.append(rec)
            if self._log is not None:
                self._log.write(line + "\n")
                self._log.flush()


def _parse_listen(s: str) -> tuple[str, int]:
    host, sep, port = s.rpartition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"--listen wants HOST:PORT, got {s!r}")
    return host or "127.0.0.1", int(port)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--upstream", required=True, help="http://HOST:PORT of the real server")
    ap.add_argument("--listen", type=_parse_listen, default=("127.0.0.1", 0),
                    help="HOST:PORT to listen on; port 0 picks a free one (default 127.0.0.1:0)")
    ap.add_argument("--port-file", help="write the port listened on here once ready")
    ap.add_argument("--log", help="append one JSON line per request here")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rate", type=float, default=0.0, help="probability of a fault per request")
    ap.add_argument("--faults", default=",".join(ALL_FAULTS), help="comma-separated, from: " + ",".join(ALL_FAULTS))
    ap.add_argument("--delay-s", type=float, default=5.0, help="hold of the delay fault (s)")
    ap.add_argument("--retry-after", default="1", help="Retry-After value of the 429 fault")
    ap.add_argument("--upstream-timeout", type=float, default=600.0)
    a = ap.parse_args(argv)
    try:
        proxy = FaultProxy(a.upstream, a.listen, seed=a.seed, rate=a.rate, faults=a.faults,
                           delay_s=a.delay_s, retry_after=a.retry_after, log_path=a.log,
                           upstream_timeout=a.upstream_timeout)
    except ValueError as e:
        ap.error(str(e))
    proxy.bind()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if a.port_file:
        tmp = f"{a.port_file}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(f"{proxy.port}\n")
        os.replace(tmp, a.port_file)  # readers never see a half-written port
    print(f"fault proxy on {proxy.url} -> {a.upstream} (seed {a.seed}, rate {a.rate}, "
          f"faults {','.join(proxy.faults)})", file=sys.stderr, flush=True)
    try:
        proxy.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        proxy.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
