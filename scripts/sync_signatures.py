"""Write the signatures that type checkers and IDEs see for classes generated from an options table.

The estimators' ``__init__`` (``vaekit.options.make_init``) and ``TrainConfig``
(``dataclasses.make_dataclass``) are built at run time from :data:`vaekit.options.OPTIONS`, so a
type checker sees no parameters. Each such class carries, in an ``if TYPE_CHECKING:`` block, the
signature this script writes between two marker comments::

    # <generated signature VAE: scripts/sync_signatures.py writes this block from vaekit.options>
    ...
    # </generated signature VAE>

and ``src/vaekit/__init__.pyi`` lists the lazily imported names of ``vaekit.__init__`` for the same reason.
``python scripts/sync_signatures.py`` rewrites every block; ``--check`` only reports the stale ones
(exit 1), as tests/test_signatures.py does. Another table of :class:`vaekit.options.Option` (the
detectors') takes one more :class:`Block` in :func:`blocks`: ``init_block(path, name, table, kind)``
(and ``params_block`` for a TypedDict of the parameters, which factory functions' ``**kwargs`` take).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
if str(SRC) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(SRC))

from vaekit.options import Option  # noqa: E402 - after the path set-up above

TYPES = {"int": "int", "float": "float", "str": "str", "bool": "bool", "sizes": "int | tuple[int, ...] | list[int] | str",
         "columns": "list | tuple"}  # column names or positions (the anomaly detectors')


@dataclass(frozen=True)
class Block:
    """One generated block: the file it lives in, its marker name, and the lines between its markers (unindented)."""

    path: Path
    name: str
    render: Callable[[], list[str]]


def annotation(opt: Option) -> str:
    """The Python type of an option's values (what ``Option.check`` accepts, numpy scalars aside)."""
    return TYPES[opt.type] + (" | str" if opt.extra.get("auto") else "") + (" | None" if opt.nullable else "")  # 'auto': sized at fit


def parameters(table: Iterable[Option], kind: str) -> list[str]:
    """``name: type = default`` for each option of ``kind``, in the table's (the signature's) order."""
    return [f"{o.name}: {annotation(o)} = {o.default_for(kind)!r}" for o in table if kind in o.kinds]


def attribute_lines(table: Iterable[Option], kind: str) -> list[str]:
    """``name: type`` for each option of ``kind``: the attributes an estimator stores, or a TypedDict's keys."""
    return [f"{o.name}: {annotation(o)}" for o in table if kind in o.kinds]


def init_lines(table: Iterable[Option], kind: str) -> list[str]:
    """The attributes an estimator stores and its ``__init__`` signature, as ``make_init`` builds them."""
    table = tuple(table)
    attrs = attribute_lines(table, kind)
    params = [f"    {p}," for p in parameters(table, kind)]
    return attrs + ["", "def __init__(", "    self,", *params, ") -> None: ..."]


def fields_lines(table: Iterable[Option], kind: str, target: str) -> list[str]:
    """The fields of a dataclass made from the options of one ``target`` (``TrainConfig``)."""
    return parameters((o for o in table if o.target == target), kind)


def exports_lines() -> list[str]:
    """``vaekit.__init__``'s lazily imported names as the imports a type checker follows."""
    import vaekit

    def isort_order(item: tuple[str, str]) -> tuple:  # ruff's: by module, then CONSTANTS, Classes, functions
        name, module = item
        return module, 0 if name.isupper() else 1 if name[0].isupper() else 2, name

    lines = [f"from .{module} import {name} as {name}" for name, module in sorted(vaekit._EXPORTS.items(), key=isort_order)]
    return lines + ["", "__version__: str"]


def init_block(path: str, name: str, table: Callable[[], tuple[Option, ...]], kind: str) -> Block:
    return Block(ROOT / path, name, lambda: init_lines(table(), kind))


def params_block(path: str, name: str, table: Callable[[], tuple[Option, ...]], kind: str) -> Block:
    """The keys of a ``TypedDict(total=False)`` of the parameters, for ``**kwargs: Unpack[...]`` (the presets)."""
    return Block(ROOT / path, name, lambda: attribute_lines(table(), kind))


def _options() -> tuple[Option, ...]:
    from vaekit.options import OPTIONS

    return OPTIONS


def _detector_options() -> tuple[Option, ...]:
    from vaekit.anomaly.options import DETECTOR_OPTIONS

    return DETECTOR_OPTIONS


def _density_kind() -> str:
    from vaekit.options import DENSITY

    return DENSITY[0]  # TrainConfig's defaults, as train.py declares it


def blocks() -> list[Block]:
    """Every generated block of the package."""
    return [
        init_block("src/vaekit/estimators.py", "VAE", _options, "vae"),
        init_block("src/vaekit/estimators.py", "Autoencoder", _options, "ae"),
        init_block("src/vaekit/estimators.py", "VQVAE", _options, "vq"),
        params_block("src/vaekit/estimators.py", "VAEParams", _options, "vae"),
        params_block("src/vaekit/estimators.py", "AutoencoderParams", _options, "ae"),
        init_block("src/vaekit/anomaly/detectors.py", "VAEDetector", _detector_options, "VAEDetector"),
        init_block("src/vaekit/anomaly/detectors.py", "AutoencoderDetector", _detector_options, "AutoencoderDetector"),
        Block(ROOT / "src/vaekit/train.py", "TrainConfig", lambda: fields_lines(_options(), _density_kind(), "train")),
        Block(ROOT / "src/vaekit/__init__.pyi", "exports", exports_lines),
    ]


def _pattern(name: str) -> re.Pattern:
    return re.compile(rf"^([ \t]*)# <generated signature {re.escape(name)}\b[^\n]*\n(.*?)^[ \t]*# </generated signature {re.escape(name)}>",
                      re.M | re.S)


def rewrite(text: str, block: Block) -> str:
    """``text`` with the block's lines written between its markers, at the opening marker's indentation."""
    found = list(_pattern(block.name).finditer(text))
    if len(found) != 1:
        raise SystemExit(f"{block.path}: expected one '# <generated signature {block.name}' ... '# </generated signature {block.name}>' "
                         f"pair, found {len(found)}; add the two marker lines where the block belongs")
    m = found[0]
    indent = m.group(1)
    body = "".join(f"{indent}{line}\n" if line else "\n" for line in block.render())
    return text[: m.start(2)] + body + text[m.end(2):]


def stale(selected: Iterable[Block] | None = None) -> list[str]:
    """The blocks whose text differs from what :func:`rewrite` would write, as 'path: name'."""
    out = []
    for block in blocks() if selected is None else selected:
        text = block.path.read_text()
        if rewrite(text, block) != text:
            out.append(f"{block.path.relative_to(ROOT)}: {block.name}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale blocks (exit 1 if any)")
    args = parser.parse_args(argv)
    if args.check:
        old = stale()
        for line in old:
            print(f"stale: {line}; run python scripts/sync_signatures.py")
        return 1 if old else 0
    for block in blocks():
        text = block.path.read_text()
        new = rewrite(text, block)
        if new != text:
            block.path.write_text(new)
            print(f"wrote {block.path.relative_to(ROOT)}: {block.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
