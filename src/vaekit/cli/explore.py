"""``vaekit explore RUN``: serve the live latent-space explorer of :mod:`vaekit.explore`."""

from __future__ import annotations

import argparse

from ..explore.limits import MAX_POINTS
from .common import Formatter, add_data_options
from .pretrained import add_pretrained_option, resolve_run


def _port(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"a port lies in 0..65535 (0: any free port), got {v}")
    return v


def add_parser(sub) -> None:
    """Register ``explore`` on the ``vaekit`` subparsers."""
    p = sub.add_parser("explore", help="a live latent-space explorer for a run, in the browser", formatter_class=Formatter,
                       description="Serve a page that shows a run's latent space: hover over the codes of test examples, drag across\n"
                                   "the plane and watch E[x|z] change, slide each latent dimension (ordered by KL), interpolate\n"
                                   "between examples or class means, and read one example's ELBO terms in nats.\n"
                                   f"The plane shows the first --limit examples of --split (default {MAX_POINTS}). Everything is\n"
                                   "served locally; Ctrl-C or SIGTERM stops the server.\n"
                                   "Example: vaekit explore runs/mnist2d")
    p.add_argument("run", metavar="RUN_DIR", nargs="?",
                   help="a run folder written by `vaekit train` (or a model saved with model.save, or --pretrained NAME)")
    add_pretrained_option(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on; only this machine can connect to 127.0.0.1")
    p.add_argument("--port", type=_port, default=8765, help="port to listen on (0: any free port)")
    p.add_argument("--no-browser", action="store_true", help="print the URL but do not open a browser")
    add_data_options(p, None, "test")
    p.set_defaults(func=cmd_explore)


def cmd_explore(args) -> int:
    from ..explore import Explorer, ExploreServer, serve

    resolve_run(args)
    server = ExploreServer(None, args.host, args.port)  # a busy port fails now, not after the model loads
    try:
        server.explorer = Explorer.from_run(args.run, dataset=args.dataset, data_dir=args.data_dir, split=args.split,
                                            label_column=args.label_column, limit=args.limit)
    except BaseException:
        server.server_close()
        raise
    serve(server, open_browser=not args.no_browser, say=lambda m: print(m, flush=True))
    return 0
