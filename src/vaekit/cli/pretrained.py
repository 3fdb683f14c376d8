"""``--pretrained NAME``: a model shipped with vaekit instead of a RUN_DIR (sample, explore, reconstruct,
encode, plot, evaluate). ``--pretrained list`` prints the names, one line each from their cards."""

from __future__ import annotations

import argparse

from .common import error

HELP = ("a pretrained model shipped with vaekit, instead of RUN_DIR: mnist-2d, mnist-cvae or frey-2d "
        "(`--pretrained list` describes them)")


class PretrainedAction(argparse.Action):
    """Checks the name as it is parsed: ``list`` prints the models and exits 0, an unknown name is a one-line error."""

    def __call__(self, parser, namespace, values, option_string=None):
        from ..errors import ConfigError
        from ..pretrained import describe, pretrained_path

        if values == "list":
            print(describe())
            parser.exit(0)
        try:
            pretrained_path(values)
        except ConfigError as e:
            parser.error(f"{option_string}: {e}")
        setattr(namespace, self.dest, values)


def add_pretrained_option(p: argparse.ArgumentParser) -> None:
    """--pretrained NAME (the parser's RUN_DIR positional must be optional: nargs='?')."""
    p.add_argument("--pretrained", action=PretrainedAction, default=None, metavar="NAME", help=HELP)


def resolve_run(args) -> None:
    """Point ``args.run`` at the pretrained model's folder when ``--pretrained`` is given.

    The MNIST models read vaekit's embedded test digits unless --dataset or --data-dir says
    otherwise, so that they work without a download; exactly one of RUN_DIR and --pretrained.
    """
    from ..pretrained import default_dataset, pretrained_path

    name = getattr(args, "pretrained", None)
    if name is None:
        if args.run is None:
            raise error("give a RUN_DIR (a folder written by `vaekit train`) or --pretrained NAME (`--pretrained list` shows them)")
        return
    if args.run is not None:
        raise error(f"give either RUN_DIR ({args.run}) or --pretrained {name}, not both")
    args.run = str(pretrained_path(name))
    if getattr(args, "dataset", "") is None and getattr(args, "data_dir", "") is None:
        args.dataset = default_dataset(name)
