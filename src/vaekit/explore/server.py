"""The explorer's HTTP server: the standard library's ThreadingHTTPServer and a table of routes.

Why the standard library and not Starlette/uvicorn: the app is a handful of GET routes over one
in-process model, read by one person's browser on the same machine. ``http.server`` does that in
about a hundred readable lines with no new dependency (vaekit installs offline from wheels), and a
thread per request lets several tabs share the model (its calls are serialized by a lock in
:class:`~vaekit.explore.explorer.Explorer`). An async framework would buy concurrency that a
CPU-bound model behind a lock cannot use.

Safety: the server answers only the paths in :data:`~vaekit.explore.routes.ROUTES` and the page's own files, which are
read from the package once at start; nothing in a request is ever opened as a file. Bound to a
loopback address, it also refuses requests whose Host header names another machine, so a web page
elsewhere cannot reach it through DNS rebinding. Every response carries a strict
Content-Security-Policy (scripts only from this server, no inline script) and ``nosniff``, so text
from a run folder (class names, file names) that reaches the page can never run as script; JSON is
written with ``<``, ``>`` and ``&`` escaped, so it reads as HTML nowhere either.

Bounded: a connection that sends nothing is closed after :data:`IDLE_TIMEOUT` seconds, at most
:data:`MAX_CONNECTIONS` are open at once (one thread each; see :mod:`.connections` for who makes
room), and every request gets an answer: a 400 with one line for a bad one, a 500 with one line
for a bug, a 503 when every connection is busy.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from ..errors import VaekitError
from .connections import Connections
from .explorer import Explorer
from .limits import ADMIT_WAIT, IDLE_TIMEOUT, MAX_CONNECTIONS
from .routes import JSON, JSON_ROUTES, ROUTES

# path -> (file in vaekit/explore/static, content type)
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
}
TEXT = "text/plain; charset=utf-8"

# Sent with every response. The page's script and style are files from this server, its images
# are PNGs fetched from it or drawn into data: URLs, and it fetches only from here: anything else,
# inline script above all, the browser refuses. The other headers: no MIME sniffing (a JSON or
# text answer never turns into HTML), no framing, no referrer, no use of these files by other sites.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
)


def _json_bytes(obj) -> bytes:
    """Strict JSON (no NaN) with <, > and & escaped: names from a run folder stay data wherever the bytes land.

    The escapes are safe because in JSON these characters can occur only inside strings.
    """
    text = json.dumps(obj, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()


def _one_line(message: str) -> str:
    return " ".join(message.splitlines()).strip()


def _static_files() -> dict[str, tuple[bytes, str]]:
    folder = resources.files("vaekit.explore") / "static"
    return {path: ((folder / name).read_bytes(), ctype) for path, (name, ctype) in STATIC.items()}


class Handler(BaseHTTPRequestHandler):
    server: ExploreServer
    server_version = "vaekit-explore"
    protocol_version = "HTTP/1.1"  # keep-alive: one connection carries a drag's many decodes
    # Headers and body go out as two writes; with Nagle's algorithm on, the second waits for the
    # client's delayed ACK, which adds 40 ms to every round trip (measured: 44 ms against 0.5 ms).
    disable_nagle_algorithm = True

    def setup(self) -> None:
        # StreamRequestHandler.setup puts this on the socket: a read or write that waits longer ends
        # the connection (handle_one_request catches the timeout and closes it quietly).
        self.timeout = self.server.idle_timeout
        super().setup()

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        if not self.server.connections.busy(self.connection):
            self.close_connection = True  # evicted while its request arrived: the socket is already shut
            return
        try:
            self._answer(urlsplit(self.path))
        finally:
            self.server.connections.idle(self.connection)

    def _answer(self, url) -> None:
        if not self.server.host_allowed(self.headers.get("Host", "")):
            return self._send(403, TEXT, b"this explorer answers only requests addressed to its own host name\n")
        if url.path in self.server.static:
            body, ctype = self.server.static[url.path]
            return self._send(200, ctype, body)
        route = ROUTES.get(url.path)
        if route is None:
            return self._send(404, TEXT, f"no such page {url.path[:80]!r}; the API is {', '.join(ROUTES)}\n".encode())
        try:
            ctype, body = route(self.server.explorer, parse_qs(url.query, keep_blank_values=True))
            if ctype == JSON:
                body = _json_bytes(body)  # inside the try: a value JSON cannot hold is a bug to report, not a dropped connection
        except VaekitError as e:  # RequestError and the library's own one-line errors: the request was wrong
            return self._fail(url.path, 400, str(e))
        except Exception as e:  # noqa: BLE001 - a bug: say so in one line, keep the traceback in the terminal
            traceback.print_exc(file=sys.stderr)
            return self._fail(url.path, 500, f"internal error ({type(e).__name__}); see the terminal running vaekit explore")
        self._send(200, ctype, body)

    def _fail(self, path: str, status: int, message: str) -> None:
        line = _one_line(message)
        if path in JSON_ROUTES:
            return self._send(status, JSON, _json_bytes({"error": line}) + b"\n")
        self._send(status, TEXT, (line + "\n").encode())

    def _send(self, status: int, ctype: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def end_headers(self) -> None:
        # Here rather than in _send, so that http.server's own answers (send_error) carry them too.
        for name, value in SECURITY_HEADERS:
            self.send_header(name, value)
        super().end_headers()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (a malformed request line, an unknown method): one line of text, like ours."""
        self.close_connection = True  # the request could not be read, so neither can where the next one starts
        text = _one_line(message or self.responses.get(code, ("error",))[0])
        self._send(code, TEXT, f"{code} {text}\n".encode())

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's signature
        pass  # one line per pointer move would drown the terminal


class ExploreServer(ThreadingHTTPServer):
    """A threaded HTTP server holding one :class:`Explorer`; ``port=0`` picks a free port.

    The socket is bound at construction, so a busy port or a bad host fails at once; ``explorer``
    may be set after that (the command binds before it spends seconds loading the model).
    """

    daemon_threads = True  # a tab left open does not keep the process alive after Ctrl-C
    block_on_close = False  # and server_close does not wait for them: it shuts their sockets instead
    allow_reuse_address = True
    request_queue_size = 128  # a burst of connections waits in the kernel's backlog rather than being refused

    def __init__(self, explorer: Explorer | None, host: str = "127.0.0.1", port: int = 0, *,
                 idle_timeout: float = IDLE_TIMEOUT, max_connections: int = MAX_CONNECTIONS):
        self.idle_timeout = idle_timeout
        self.connections = Connections(max_connections)
        try:
            family_v6 = ipaddress.ip_address(host).version == 6
        except ValueError:
            family_v6 = False
        if family_v6:
            self.address_family = socket.AF_INET6
        try:
            super().__init__((host, port), Handler)
        except OSError as e:
            if e.errno in (98, 48):  # EADDRINUSE (Linux, macOS)
                raise VaekitError(f"port {port} on {host} is in use; pass another --port, or --port 0 for any free one") from None
            raise VaekitError(f"cannot listen on {host}:{port} ({e.strerror or e}); pass --host 127.0.0.1 or another --port") from None
        self.explorer = explorer
        self.static = _static_files()
        self.host = host
        self.loopback = _is_loopback(host)

    # -- bounded connections -------------------------------------------------------------------
    def get_request(self):
        try:
            return super().get_request()
        except OSError as e:
            if e.errno in (errno.EMFILE, errno.ENFILE):
                # Out of file descriptors: the listening socket stays readable, so without a pause the
                # accept loop would spin at full CPU. Free one (the longest-idle connection) and pause.
                self.connections.evict_oldest()
                time.sleep(0.05)
            raise  # socketserver skips this accept and goes back to waiting

    def process_request(self, request, client_address) -> None:
        if not self.connections.admit(request, ADMIT_WAIT):
            _refuse_busy(request)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)  # a thread for this connection
        except BaseException:
            self.connections.forget(request)
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connections.forget(request)

    def handle_error(self, request, client_address) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # a client that left mid-answer, or a connection evicted or timed out: nothing to report
        super().handle_error(request, client_address)

    def server_close(self) -> None:
        super().server_close()
        self.connections.close_all()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        return f"http://{host}:{self.server_port}/"

    def host_allowed(self, host_header: str) -> bool:
        if not self.loopback:
            return True  # asked to serve the network: any name may reach it
        name = host_header.rsplit(":", 1)[0] if not host_header.endswith("]") else host_header
        return name.strip("[]").lower() in ("localhost", "127.0.0.1", "::1", self.host.lower())


def _refuse_busy(sock: socket.socket) -> None:
    """Answer 503 on a connection that found every place busy, without letting it stall the accept loop."""
    body = b"the explorer is answering as many requests as it holds connections; retry in a moment\n"
    head = ["HTTP/1.1 503 Service Unavailable", f"Content-Type: {TEXT}", f"Content-Length: {len(body)}",
            "Retry-After: 1", "Connection: close", *(f"{k}: {v}" for k, v in SECURITY_HEADERS)]
    try:
        sock.settimeout(0.2)  # a client that does not read must not hold up the server
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        sock.setblocking(False)
        sock.recv(65536)  # read the request it sent: closing with unread data would reset the connection and lose the 503
    except OSError:
        pass


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(server: ExploreServer, *, open_browser: bool = True, say: Callable[[str], None] = print) -> None:
    """Serve until Ctrl-C (SIGINT) or SIGTERM, then close the socket and return.

    Prints the URL on one line (``say``); opens it in the default browser when ``open_browser``.
    """
    say(f"vaekit explore: {server.explorer.name} at {server.url}  (Ctrl-C stops)")
    if not server.loopback:
        print(f"vaekit: warning: listening on {server.host}, so other machines on the network can reach this explorer", file=sys.stderr)
    if open_browser:
        import webbrowser

        threading.Thread(target=webbrowser.open, args=(server.url,), daemon=True).start()

    def stop(signum, frame):
        raise KeyboardInterrupt

    # SIGTERM ends the server as Ctrl-C does; SIGINT is set too, since a shell starts a background
    # job with SIGINT ignored and `kill -INT` should still stop it.
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.serve_forever(poll_interval=0.25)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    say("vaekit explore: stopped")
