"""The explorer's HTTP server: the standard library's ThreadingHTTPServer and a table of routes.

Why the standard library and not Starlette/uvicorn: the app is a handful of GET routes over one
in-process model, read by one person's browser on the same machine. ``http.server`` does that in
about a hundred readable lines with no new dependency (vaekit installs offline from wheels), and a
thread per request lets several tabs share the model (its calls are serialized by a lock in
:class:`~vaekit.explore.explorer.Explorer`). An async framework would buy concurrency that a
CPU-bound model behind a lock cannot use.

Safety: the server answers only the paths in :data:`ROUTES` and the page's own files, which are
read from the package once at start; nothing in a request is ever opened as a file. Bound to a
loopback address, it also refuses requests whose Host header names another machine, so a web page
elsewhere cannot reach it through DNS rebinding.
"""

from __future__ import annotations

import ipaddress
import json
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from ..errors import VaekitError
from .explorer import Explorer

# path -> (file in vaekit/explore/static, content type)
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
}
PNG, JSON = "image/png", "application/json"


def _one(query: dict, name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _decode(ex: Explorer, q: dict):
    return PNG, ex.decode_png(ex.parse_codes(_one(q, "z")), ex.parse_label(_one(q, "label"), allow_all=True))


def _decode_json(ex: Explorer, q: dict):
    Z = ex.parse_codes(_one(q, "z"))
    X = ex.decode(Z, ex.parse_label(_one(q, "label")))
    return JSON, {"x": X.reshape(len(X), -1).tolist()}


def _interpolate(ex: Explorer, q: dict):
    a, b = ex.parse_endpoint(_one(q, "a"), "a"), ex.parse_endpoint(_one(q, "b"), "b")
    steps = ex.parse_steps(_one(q, "steps"))
    label = ex.parse_label(_one(q, "label"))
    ex.require_images()
    return PNG, ex.strip_png(ex.decode(ex.interpolate(a, b, steps), label))


def _example(ex: Explorer, q: dict):
    out = ex.example(ex.parse_index(_one(q, "i")))
    if ex.image_shape:
        out["reconstruction_url"] = "/decode?z=" + ",".join(repr(float(v)) for v in out["code"]) + (
            f"&label={out['label']}" if ex.conditional else "")
        out["image_url"] = f"/image?i={out['index']}"
    return JSON, out


# path -> handler(explorer, query) -> (content type, bytes or a JSON-ready object)
ROUTES: dict[str, Callable] = {
    "/info": lambda ex, q: (JSON, ex.info()),
    "/codes": lambda ex, q: (JSON, ex.codes_json()),
    "/example": _example,
    "/image": lambda ex, q: (PNG, ex.image_png(ex.parse_index(_one(q, "i")))),
    "/decode": _decode,
    "/decode.json": _decode_json,
    "/interpolate": _interpolate,
}


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

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        url = urlsplit(self.path)
        if not self.server.host_allowed(self.headers.get("Host", "")):
            return self._send(403, "text/plain; charset=utf-8", b"this explorer answers only requests addressed to its own host name\n")
        if url.path in self.server.static:
            body, ctype = self.server.static[url.path]
            return self._send(200, ctype, body)
        route = ROUTES.get(url.path)
        if route is None:
            return self._send(404, "text/plain; charset=utf-8", f"no such page {url.path[:80]!r}; the API is {', '.join(ROUTES)}\n".encode())
        try:
            ctype, body = route(self.server.explorer, parse_qs(url.query, keep_blank_values=True))
        except VaekitError as e:  # RequestError and the library's own one-line errors: the request was wrong
            return self._send(400, "text/plain; charset=utf-8", (str(e).replace("\n", " ") + "\n").encode())
        except Exception as e:  # noqa: BLE001 - a bug: say so in one line, keep the traceback in the terminal
            traceback.print_exc(file=sys.stderr)
            text = f"internal error ({type(e).__name__}); see the terminal running vaekit explore\n"
            return self._send(500, "text/plain; charset=utf-8", text.encode())
        if ctype == JSON:
            body = json.dumps(body, allow_nan=False).encode()
        self._send(200, ctype, body)

    def _send(self, status: int, ctype: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's signature
        pass  # one line per pointer move would drown the terminal


class ExploreServer(ThreadingHTTPServer):
    """A threaded HTTP server holding one :class:`Explorer`; ``port=0`` picks a free port.

    The socket is bound at construction, so a busy port or a bad host fails at once; ``explorer``
    may be set after that (the command binds before it spends seconds loading the model).
    """

    daemon_threads = True  # a tab left open does not keep the process alive after Ctrl-C
    allow_reuse_address = True

    def __init__(self, explorer: Explorer | None, host: str = "127.0.0.1", port: int = 0):
        try:
            family_v6 = ipaddress.ip_address(host).version == 6
        except ValueError:
            family_v6 = False
        if family_v6:
            import socket

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
