"""Option files for ``vaekit train``: ``--config FILE.toml``, ``--preset NAME`` and ``vaekit config show RUN``.

A config file is TOML whose keys are ``train``'s options by their Python names (``latent_dim = 2``,
``hidden = [512, 256]``; dashes work too); tables (``[model]``, ``[optimization]``) may group them
for reading and are otherwise ignored. A preset is such a file shipped in ``vaekit/presets``.
A run's ``config.json`` is accepted as well: it re-runs that run with the same options.

The file is turned into the flags it stands for, placed before the flags typed on the command line:
argparse lets the last occurrence win, so typed flags override the file, and the file's values go
through exactly the checks typed flags get. The expanded command is what a run records (in its
checkpoint and config.json), so a resumed run never depends on the file staying as it was.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import sys
from importlib import resources
from pathlib import Path

from ..errors import VaekitError
from ..options import applicable
from ..registry import PRESETS, family_of_estimator
from .common import Formatter, error

# Flags a file cannot set: they say what to do with this invocation, not how to train.
_NOT_IN_FILES = {"config", "preset", "resume", "overwrite", "help"}
# Keys a file may hold that are not options (a preset's one-line description).
_FILE_KEYS_IGNORED = {"description"}


# -- reading -----------------------------------------------------------------------------------


def preset_names() -> list[str]:
    """The presets shipped with vaekit (``vaekit train --preset list``)."""
    folder = resources.files("vaekit") / "presets"
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def read_preset(name: str) -> dict:
    """The table of the preset ``name``; a one-line error naming the presets for an unknown one."""
    names = preset_names()
    if name not in names:
        near = difflib.get_close_matches(name, names, n=1)
        hint = f"; did you mean {near[0]}?" if near else ""
        raise error(f"no preset named {name!r}: choose one of {', '.join(names)} (vaekit train --preset list){hint}")
    return _parse_toml((resources.files("vaekit") / "presets" / f"{name}.toml").read_text(), f"preset {name}")


def read_config_file(path: str | Path) -> dict:
    """The options table of a TOML file, or of a run's config.json (see :func:`run_options`)."""
    path = Path(path).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        path = path / "config.json"
    if not path.is_file():
        raise error(f"config file not found: {path}; pass a .toml file or a run's config.json")
    if path.suffix.lower() == ".json":
        try:
            cfg = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise error(f"{path}: not valid JSON ({e})") from None
        if not isinstance(cfg, dict) or cfg.get("format") != "vaekit-model":
            raise error(f"{path} is not a vaekit run's config.json; pass a .toml file of train options")
        return run_options(cfg)
    if path.suffix.lower() != ".toml":
        raise error(f"{path}: config files are TOML (.toml) or a run's config.json")
    return _parse_toml(path.read_text(errors="replace"), str(path))


def _parse_toml(text: str, where: str) -> dict:
    import tomllib

    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise error(f"{where}: not valid TOML ({e})") from None
    flat: dict = {}
    for key, value in table.items():
        # Tables group options for the reader; their names carry no meaning.
        items = value.items() if isinstance(value, dict) else [(key, value)]
        for k, v in items:
            if isinstance(v, dict):
                raise error(f"{where}: option tables nest one level at most ([section] then key = value); {k!r} is a table")
            if k in flat:
                raise error(f"{where}: option {k!r} is set twice")
            flat[k] = v
    return flat


# -- a table as flags --------------------------------------------------------------------------


def table_to_argv(table: dict, parser: argparse.ArgumentParser, where: str) -> list[str]:
    """The flags of ``parser`` that ``table`` stands for, checked: unknown keys and wrong types are
    one-line errors that name the file and suggest the nearest option."""
    actions = {a.dest: a for a in parser._actions if a.option_strings}  # noqa: SLF001 - argparse has no public list
    argv: list[str] = []
    for key, value in table.items():
        if key in _FILE_KEYS_IGNORED:
            continue
        dest = key.replace("-", "_")
        action = actions.get(dest)
        if action is None or dest in _NOT_IN_FILES:
            if dest in _NOT_IN_FILES:
                raise error(f"{where}: {key!r} cannot be set in a config file; pass --{dest.replace('_', '-')} on the command line")
            near = difflib.get_close_matches(dest, [d for d in actions if d not in _NOT_IN_FILES], n=1)
            hint = f"; did you mean {near[0]!r}?" if near else "; see vaekit train --help for the options"
            raise error(f"{where}: unknown option {key!r}{hint}")
        flag = next(s for s in action.option_strings if s.startswith("--"))
        if action.nargs == 0:  # a switch (store_true)
            if not isinstance(value, bool):
                raise error(f"{where}: {key} must be true or false, got {value!r}")
            argv += [flag] if value else []
            continue
        if isinstance(value, bool):
            raise error(f"{where}: {key} takes a value, not {str(value).lower()} (see {flag} in vaekit train --help)")
        if isinstance(value, list):
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                raise error(f"{where}: {key} must be a list of whole numbers like [512, 256], got {value!r}")
            value = ",".join(map(str, value))
        argv += [flag, str(value)]
    return argv


def expand_config(argv: list[str], train_parser: argparse.ArgumentParser) -> list[str]:
    """``train --preset NAME`` / ``--config FILE`` become the flags they stand for, placed before the
    typed ones (which therefore win): presets first, then config files, then typed flags."""
    if not argv or argv[0] != "train":
        return argv
    rest: list[str] = []
    files: dict[str, list[str]] = {"--preset": [], "--config": []}
    i = 1
    while i < len(argv):
        name, eq, inline = argv[i].partition("=")
        if name not in files:
            rest.append(argv[i])
            i += 1
            continue
        if eq:
            value, i = inline, i + 1
        elif i + 1 < len(argv):
            value, i = argv[i + 1], i + 2
        else:
            raise error(f"{name} needs a value")
        if name == "--preset" and value == "list":
            rest += ["--preset", "list"]  # answered by the train command itself
        else:
            files[name].append(value)
    expanded: list[str] = []
    for value in files["--preset"]:
        expanded += table_to_argv(read_preset(value), train_parser, f"preset {value}")
    for value in files["--config"]:
        expanded += table_to_argv(read_config_file(value), train_parser, value)
    return ["train", *expanded, *rest]


# -- a run's options ---------------------------------------------------------------------------


def _model_choice(cfg: dict) -> str:
    """The --model that describes a saved run: the last preset of its family whose defining
    parameter (``needs``) has the preset's value; every other option is written out anyway."""
    params, family = cfg.get("params", {}), family_of_estimator(cfg.get("estimator"))
    chosen = [p.name for p in PRESETS if p.families[0] == family.name
              and (not p.needs or params.get(p.needs) == p.params[p.needs])]
    return chosen[-1]


def run_options(cfg: dict) -> dict:
    """The ``train`` options (Python names) that reproduce a saved run, from its config.json.

    Every declared option that applies to the model and has a flag is written with the value the
    model was trained with, so a later change of a default cannot change the re-run; the data options come from the run section
    (absent for a model saved from Python: then --dataset must be given).
    """
    params = cfg.get("params", {})
    out: dict = {"model": _model_choice(cfg)}
    run = cfg.get("run") or {}
    for key in ("dataset", "data_dir", "label_column", "image_size", "channels"):
        if run.get(key) is not None:
            out[key] = run[key]
    kind = family_of_estimator(cfg.get("estimator")).name
    # Options that have no effect on this model (a Student-t's degrees of freedom on a Normal
    # posterior) would only be noise in the file.
    for opt in applicable(params, kind):
        if opt.cli_flag and params.get(opt.name) is not None:
            value = params[opt.name]
            out[opt.name] = list(value) if isinstance(value, (list, tuple)) else value
    return out


def to_toml(options: dict, header: str = "") -> str:
    """Options as a TOML document, one ``key = value`` line each (what tomllib reads back)."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    for key, value in options.items():
        lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return ("inf" if v > 0 else "-inf") if math.isinf(v) else "nan" if math.isnan(v) else repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))  # a TOML basic string uses JSON's escapes


# -- vaekit config show ------------------------------------------------------------------------


def add_parser(sub) -> None:
    """Register ``config`` (``config show RUN``) on the ``vaekit`` subparsers."""
    p = sub.add_parser("config", help="show a run's options as a TOML config file", formatter_class=Formatter,
                       description="vaekit config show RUN prints the train options of a run as TOML: "
                                   "save it, edit it, and train again with vaekit train --config FILE.toml --out NEW.")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION")
    s = csub.add_parser("show", help="print a run's train options as TOML", formatter_class=Formatter)
    s.add_argument("run", metavar="RUN_DIR", help="a run folder (or its config.json)")
    s.set_defaults(func=cmd_show)
    p.set_defaults(func=lambda args: _missing_action(p))


def _missing_action(p: argparse.ArgumentParser) -> int:
    p.print_usage(sys.stderr)
    print("vaekit config: error: say what to do: vaekit config show RUN_DIR", file=sys.stderr)
    return 2


def cmd_show(args) -> int:
    path = Path(args.run)
    cfg_path = path / "config.json" if path.is_dir() else path
    if not cfg_path.is_file():
        raise error(f"no run at {path}: it has no config.json; pass a folder written by vaekit train")
    try:
        cfg = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise VaekitError(f"{cfg_path}: not valid JSON ({e})") from None
    if not isinstance(cfg, dict) or cfg.get("format") != "vaekit-model":
        raise error(f"{cfg_path} is not a vaekit run's config.json")
    header = (f"vaekit train options of {path} (vaekit config show)\n"
              f"train again with: vaekit train --config FILE.toml --out NEW_RUN")
    sys.stdout.write(to_toml(run_options(cfg), header))
    return 0
