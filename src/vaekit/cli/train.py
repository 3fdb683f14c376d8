"""``vaekit train``: train a model and write a run folder (config, weights, metrics, log, figures, report).

The run is written into ``.RUN.partial`` beside ``RUN`` and renamed into place as soon as its model
is saved; the report and figures are drawn into the published folder after that (their temporary
files in ``.RUN.finishing``). An interrupted run keeps its checkpoint in ``.RUN.partial`` for
``--resume``. ``.RUN.lock`` beside it keeps a second writer out while the run goes on.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from pathlib import Path

from ..options import BY_NAME, FAMILY_DEFAULT, KINDS, OPTIONS, Option
from ..registry import FAMILIES, PRESETS, family_of
from .common import Formatter, add_data_options, error, load_data, non_negative_int, say, sizes
from .parser import OneLineParser

# --model's choices are the registered presets (vaekit.registry.PRESETS): name -> family, parameters, help.
MODELS = {p.name: (p.families[0], p.params, p.help) for p in PRESETS}
def add_parser(sub) -> None:
    """Register ``train`` on the ``vaekit`` subparsers."""
    p = sub.add_parser("train", help="train a model and write a run folder", formatter_class=Formatter,
                       description="Train a model; writes config.json, model.safetensors, metrics.csv, train.log and figures into --out.")
    add_data_options(p, "embedded", "train")
    p.add_argument("--val-split", default=None, choices=["valid", "test"], metavar="SPLIT",
                   help="validate on this split of --dataset (binarized-mnist: valid, Larochelle's 10 000 images) "
                        "instead of holding out --val-fraction of the training data")
    p.add_argument("--out", default=None, metavar="RUN_DIR", help="run folder to create (required unless --resume)")
    p.add_argument("--config", default=None, metavar="FILE.toml",
                   help="train options from a TOML file (keys are the options' names: latent_dim = 2), or a run's "
                        "config.json to train that run again; options given on the command line win")
    p.add_argument("--preset", default=None, metavar="NAME",
                   help="a named option set shipped with vaekit (`--preset list` shows them); options given on the command line win")
    p.add_argument("--tensorboard", default=None, metavar="DIR",
                   help="also write each epoch's metrics, KL per latent dimension and image grids to TensorBoard "
                        "event files in DIR (needs: pip install 'vaekit[tensorboard]')")
    p.add_argument("--tensorboard-images", type=non_negative_int, default=5, metavar="EPOCHS",
                   help="epochs between TensorBoard sample and reconstruction grids (0: none)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it already exists")
    p.add_argument("--resume", default=None, metavar="RUN_DIR",
                   help="continue an interrupted run from its last checkpoint (in .RUN_DIR.partial), with its original "
                        "options, into RUN_DIR itself; --epochs, --max-minutes, --max-steps, --log-every and the output flags (--quiet, --no-report, "
                        "--tensorboard, ...) may be given again, any other flag is refused")
    p.add_argument("--checkpoint-every", type=int, default=0, metavar="STEPS",
                   help="write a checkpoint every this many steps (0: only at epoch ends when --checkpoint-minutes is set)")
    p.add_argument("--checkpoint-minutes", type=float, default=0.0, metavar="MIN", help="write a checkpoint at least this often, in minutes (0: off)")
    add_estimator_options(p)
    p.add_argument("--no-figures", action="store_true", help="do not write samples.png and reconstructions.png")
    p.add_argument("--no-report", action="store_true",
                   help="do not write report.html (metrics with k=100 importance samples, and every figure) at the end")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors and warnings")
    p.set_defaults(func=cmd_train)

def _parser() -> argparse.ArgumentParser:
    """A parser of `vaekit train ...` alone: how a resumed run re-reads the command it recorded."""
    parser = OneLineParser(prog="vaekit")
    add_parser(parser.add_subparsers(dest="command"))
    return parser


def train_parser() -> argparse.ArgumentParser:
    """The `train` subcommand's own parser (its flags are what a config file may set)."""
    parser = OneLineParser(prog="vaekit")
    sub = parser.add_subparsers(dest="command")
    add_parser(sub)
    return sub.choices["train"]


def presets() -> dict[str, list[str]]:
    """Each shipped preset as the flags it stands for."""
    from .config import preset_names, read_preset, table_to_argv

    parser = train_parser()
    return {name: table_to_argv(read_preset(name), parser, f"preset {name}") for name in preset_names()}


def expand_preset(argv: list[str]) -> list[str]:
    """`train --preset NAME` / `--config FILE` become the flags they stand for (typed flags win)."""
    from .config import expand_config

    return expand_config(argv, train_parser())


def _default_text(opt: Option) -> str:
    if "(default" in opt.help or opt.default is None or opt.default is False:
        return ""
    show = lambda v: ",".join(map(str, v)) if isinstance(v, tuple) else f"{v:g}" if isinstance(v, float) else str(v)  # noqa: E731
    if opt.default is FAMILY_DEFAULT:  # each family's, then the presets that set their own (vaekit.registry)
        presets = [f"{show(p.params[opt.name])} for --model {p.name}" for p in PRESETS if opt.name in p.params]
        return " (default: " + ", ".join(f"{show(f.defaults[opt.name])} for {f.plural}" for f in FAMILIES) + \
            "".join(f"; {t}" for t in presets[:1]) + "".join(f", {t}" for t in presets[1:]) + ")"
    if f"({show(opt.default)}:" in opt.help:  # the help already says what the default means: "(0: off)"
        return ""
    return f" (default: {show(opt.default)})"


def add_estimator_options(p: argparse.ArgumentParser) -> None:
    """One flag per estimator option that has one, derived from vaekit.options.OPTIONS.

    Every flag defaults to None ("not given"), so that a --model preset and then the estimator's
    own default apply; the help shows the declared default.
    """
    p.add_argument("--model", default="vae", choices=PRESETS.names(),
                   help="; ".join(f"{p.name}: {p.help}" for p in PRESETS))
    groups = {}
    for opt in OPTIONS:
        if not opt.cli_flag:
            continue
        g = groups.get(opt.group) or groups.setdefault(opt.group, p.add_argument_group(opt.group))
        only = "" if len(opt.kinds) == len(KINDS) else f" [{' and '.join(FAMILIES[k].plural for k in opt.kinds)} only]"
        kw = dict(dest=opt.name, default=None, help=opt.help + _default_text(opt) + only)
        if opt.type == "bool":
            g.add_argument(opt.cli_flag, action="store_true", **kw)
            continue
        kw["type"] = {"int": int, "float": float, "str": str, "sizes": sizes}[opt.type]
        if opt.choices is not None:
            kw["choices"] = opt.all_choices()
        if opt.choices is None:
            kw["metavar"] = opt.metavar or opt.cli_flag.lstrip("-").upper().replace("-", "_")
        g.add_argument(opt.cli_flag, **kw)


def make_estimator(args):
    """The estimator that a `vaekit train` option set describes (library objects only).

    ``vars(args)`` maps onto estimator parameters through the declarations: each option's flag
    stores under its Python name. Options that were not given are left to the --model preset and
    the estimator's defaults.
    """
    from .. import estimators  # noqa: F401 - binds each family's estimator class

    family = family_of(args.model)
    given = {o.name: getattr(args, o.name) for o in OPTIONS if o.cli_flag and getattr(args, o.name, None) is not None}
    wrong = [BY_NAME[name].cli_flag for name in given if family.name not in BY_NAME[name].kinds]
    if wrong:
        takers = {k for n in given if family.name not in BY_NAME[n].kinds for k in BY_NAME[n].kinds}
        models = ", ".join(p.name for p in PRESETS if p.families[0] in takers)
        owners = " and ".join(FAMILIES[k].title for k in sorted(takers))
        raise error(f"{', '.join(wrong)} does not apply to --model {args.model}; it is for the {owners} models "
                    f"(--model {models}): drop it or choose one of them")
    est = family.parts["estimator"](**{**PRESETS[args.model].params, **given, "verbose": False})
    # A flag whose option does not apply to the model as configured (--pseudo-inputs without
    # --prior vamp) changes nothing; say so rather than let the user believe it took effect.
    # An autoencoder's sparsity and noise knobs without their penalty or corruption are refused
    # instead: for autoencoders the --model names the feature (sparse-ae, denoising-ae), so such a
    # knob means the wrong --model, the same mistake as a flag of the other family. A VAE's knobs
    # depend on another flag of the same model (--sigma on --likelihood, --pseudo-inputs on --prior)
    # and are often left on the line while trying its alternatives, so they only warn.
    params = est.get_params()
    for name in given:
        opt = BY_NAME[name]
        if not family.has_density and opt.when is not None and not opt.when(params):
            feature = "sparsity" if name.startswith("sparsity") else "noise"
            model = next(p.name for p in PRESETS if p.needs == feature)
            if params.get(feature):  # --sparsity-target with the l1 penalty
                raise error(f"{opt.cli_flag} has no effect with --sparsity {params[feature]}; it is the target of --sparsity kl: "
                            f"add --sparsity kl or drop {opt.cli_flag}")
            raise error(f"{opt.cli_flag} has no effect on --model {args.model}, which has no --{feature}; "
                        f"choose --model {model}, add --{feature}, or drop {opt.cli_flag}")
    for name in given if not getattr(args, "quiet", False) else ():
        opt = BY_NAME[name]
        if opt.when is not None and not opt.when(params):
            what = re.split(r": | \(default", opt.help)[0]  # the help's first clause names what the flag sets
            print(f"vaekit: warning: {opt.cli_flag} has no effect on this model ({what}); it is ignored", file=sys.stderr)
    return est


def _init_distributed(args) -> int:
    """Join the process group when started by torchrun; returns this process's rank."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        use_cuda = args.device != "cpu" and torch.cuda.is_available()
        if use_cuda:
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            args.device = f"cuda:{local}"
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return dist.get_rank()


def _leave_distributed() -> None:
    """Wait for every rank, then close the process group: a rank that exits while another still
    holds the group makes gloo abort it ("terminate called without an active exception")."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def cmd_train(args) -> int:
    from ..atomicfiles import lock_folder, remove_stale_temps, staging_dir

    if args.preset == "list":
        return _list_presets()
    resume = None
    if args.resume:
        args, resume = _resume(args)
        if resume is None:  # a trained model waiting in its staging folder was published
            return 0
        if args.threads:  # the recorded (or typed) count: bitwise resumption needs the same float-sum split
            import torch

            torch.set_num_threads(args.threads)
    elif not args.out:
        raise error("say where to write the run: --out RUN_DIR (or --resume RUN_DIR to continue one)")
    out = Path(args.out)
    rank = _init_distributed(args)
    _check_out_free(out, args, resume)
    est = make_estimator(args)
    est.check_params()  # bad options fail before any data is read
    if args.val_split and (args.val_split == args.split or args.split == "all"):
        raise error(f"--val-split {args.val_split} overlaps the training split --split {args.split}; train on another split")
    data = load_data(args)
    val = _val_data(args)
    if est.is_conditional and data.y is None:
        raise error(f"--model {args.model} needs labels but {args.dataset} has none; pass --label-column for a table")
    staging = staging_dir(out)
    if rank != 0:  # only rank 0 writes the run folder
        _train_into(args, est, data, None, resume=resume, val=val)
        _leave_distributed()
        return 0
    # One writer per run folder, from here until its report is written: a second `train --out` (or
    # --resume) of the same folder is refused instead of interleaving with this one.
    with lock_folder(out):
        _check_out_free(out, args, resume)  # again, now that no other writer can change it
        if resume:
            if not (staging / "checkpoint.safetensors").exists():
                raise error(f"{staging} changed while this run started; run the command again")
            remove_stale_temps(staging)  # a SIGKILL mid-checkpoint leaves one; it must not be published
        else:
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
        try:
            _train_into(args, est, data, staging, resume=resume, val=val)
            _publish(staging, out)
        except BaseException as e:
            _after_failure(e, staging, out)
            raise
        _leave_distributed()  # a no-op unless started by torchrun
        # The model is in place: a kill or a failure from here on loses only the report and figures.
        _finish(args, est, data, out)
    written = ["config.json", "model.safetensors", "metrics.csv", "train.log"]
    written += [] if args.no_figures else ["samples.png", "reconstructions.png"]
    written += [] if args.no_report else ["report.html"]
    say(args, f"wrote {out}/ ({', '.join(f for f in written if (out / f).exists())})")
    return 0


def _occupied(out: Path) -> bool:
    return out.exists() and (not out.is_dir() or any(out.iterdir()))


def _check_out_free(out: Path, args, resume) -> None:
    """A run never replaces a folder unless --overwrite was typed (for a resumed run: typed again now)."""
    if not _occupied(out) or args.overwrite:
        return
    if resume:
        raise error(f"{out} already exists: resuming .{out.name}.partial would replace it; move it away, "
                    "or pass --overwrite with --resume to replace it")
    raise error(f"{out} already exists; choose another --out or pass --overwrite to replace it")


def _publish(staging: Path, out: Path) -> None:
    """Move the trained run into place, without its checkpoint or any stray temporary file."""
    from ..atomicfiles import publish_dir, remove_stale_temps

    # The model was saved before this: the checkpoint goes only once the model replacing it is on disk.
    (staging / "checkpoint.safetensors").unlink(missing_ok=True)
    remove_stale_temps(staging)
    publish_dir(staging, out)


def _trained(staging: Path) -> bool:
    """Whether a staging folder holds a finished model (saved with its run section) that was not moved into place."""
    from ..atomicfiles import read_json
    from ..errors import VaekitError

    if not (staging / "model.safetensors").is_file():
        return False
    try:
        cfg = read_json(staging / "config.json")
    except VaekitError:
        return False
    return isinstance(cfg, dict) and isinstance(cfg.get("run"), dict)


def _after_failure(e: BaseException, staging: Path, out: Path) -> None:
    """Keep a failed run's resumable state (its last checkpoint, or a trained model) and say how to
    go on; remove the staging folder only when nothing in it can be resumed. Raises the one-line
    error for a bad input or a failed write (disk full); returns for the caller to re-raise otherwise."""
    from ..errors import ModelFileError, VaekitError
    from ..train import TrainingDiverged
    from .common import os_error_message

    if not (staging / "checkpoint.safetensors").exists() and not _trained(staging):
        shutil.rmtree(staging, ignore_errors=True)  # nothing half-written survives a failure
        return  # main shows a disk-full or permission error as one line
    hint = (f"the last good checkpoint is kept in {staging}" if (staging / "checkpoint.safetensors").exists()
            else f"the trained model is kept in {staging}") + f"; continue with `vaekit train --resume {out}`"
    if isinstance(e, OSError) and os_error_message(e) is not None:  # disk full, no permission: the machine's state
        raise error(f"{os_error_message(e)}; {hint} once that is fixed") from None
    if isinstance(e, ModelFileError):  # the checkpoint itself is unusable: resuming it again cannot help
        return
    if isinstance(e, TrainingDiverged):  # a resumed run repeats the same steps bit for bit, and --lr cannot change
        raise error(f"{e}; the last good checkpoint is kept in {staging}, but `vaekit train --resume {out}` would "
                    "diverge again at the same step: start a new run with the change") from None
    if isinstance(e, VaekitError):
        raise error(f"{e}; {hint}") from None
    print(f"vaekit: {hint}", file=sys.stderr)  # interrupted (Ctrl-C, SIGTERM, SIGHUP) or a bug


def _finish(args, est, data, out: Path) -> None:
    """report.html and the figures of a published run, their temporary files kept outside it."""
    from ..atomicfiles import finishing_dir, temporaries_in

    side = finishing_dir(out)
    side.mkdir(exist_ok=True)
    try:
        with temporaries_in(out, side):
            if not args.no_report:
                _write_report(args, out, data)
            if not args.no_figures:
                try:
                    _write_figures(args, est, data, out)
                except Exception as e:  # noqa: BLE001 - the trained model matters more than its figures
                    print(f"vaekit: warning: figures not written ({type(e).__name__}: {e})", file=sys.stderr)
    finally:
        shutil.rmtree(side, ignore_errors=True)


# -- --resume: DIR's own checkpoint, into DIR, with only the typed flags that make sense ----------

# Flags that may be typed with --resume: how long the run goes on, and what it prints or writes
# beside the model. Anything else would change what the checkpoint's numbers mean, so it is refused.
RESUME_FLAGS = ("epochs", "max_minutes", "max_steps", "log_every", "checkpoint_every", "checkpoint_minutes", "quiet", "no_figures", "no_report",
                "tensorboard", "tensorboard_images", "threads", "overwrite")
# What a recorded command may not decide: where the run is written (DIR alone decides), where else
# files go, and what would run instead of training. Dropped from the recorded command on resume.
_NOT_FROM_CHECKPOINT = ("out", "resume", "tensorboard", "overwrite", "config", "preset", "help")


def _resume_target(path: Path) -> Path:
    """The run folder DIR stands for: DIR itself, or X when DIR is the staging folder .X.partial."""
    name = path.name
    if name.startswith(".") and name.endswith(".partial") and len(name) > len("..partial"):
        return path.parent / name[1 : -len(".partial")]
    return path


def _flag(parser: argparse.ArgumentParser, dest: str) -> str:
    action = next(a for a in parser._actions if a.dest == dest)  # noqa: SLF001 - argparse has no public list
    return next((s for s in action.option_strings if s.startswith("--")), dest)


def _typed(argv: list[str], make_parser=train_parser) -> dict:
    """The options a command line gives explicitly (dest -> value), defaults left out."""
    p = make_parser()
    for a in p._actions:  # noqa: SLF001
        a.default = argparse.SUPPRESS
    dests = {a.dest for a in p._actions}  # noqa: SLF001
    return {k: v for k, v in vars(p.parse_args(argv[1:])).items() if k in dests}


def _as_tokens(parser: argparse.ArgumentParser, given: dict) -> list[str]:
    """Options as command-line tokens (``--flag=value``, so a value starting with '-' stays a value)."""
    tokens = []
    for dest, value in given.items():
        action = next(a for a in parser._actions if a.dest == dest)  # noqa: SLF001
        flag = _flag(parser, dest)
        if action.nargs == 0:
            tokens += [flag] if value else []
        else:
            tokens.append(f"{flag}={','.join(map(str, value)) if isinstance(value, list) else value}")
    return tokens


def _without(argv: list[str], dests: tuple[str, ...], parser: argparse.ArgumentParser) -> list[str]:
    """``argv`` without the options whose destination is in ``dests`` (and their values)."""
    by_flag = {s: a for a in parser._actions for s in a.option_strings}  # noqa: SLF001
    kept, i = [], 0
    while i < len(argv):
        name = argv[i].split("=", 1)[0]
        action = by_flag.get(name)
        if action is None and name.startswith("--"):  # argparse accepts unique prefixes (--tensorb)
            hits = {by_flag[f] for f in by_flag if f.startswith(name)}
            action = hits.pop() if len(hits) == 1 else None
        n = 2 if action is not None and action.nargs != 0 and "=" not in argv[i] else 1
        if action is None or action.dest not in dests:
            kept += argv[i : i + n]
        i += n
    return kept


def _stored_parser(where: Path) -> argparse.ArgumentParser:
    """The train parser, whose errors name the checkpoint instead of exiting as if the user typed them."""
    parser = train_parser()

    def fail(message: str):
        raise error(f"the checkpoint in {where} records a command vaekit cannot run ({parser._explain(message)}); "  # noqa: SLF001
                    "start the run again without --resume")

    parser.error = fail
    return parser


def _resume(args) -> tuple[argparse.Namespace, dict | None]:
    """The options and checkpoint of `train --resume DIR`.

    DIR alone says which run is resumed and where it is published: its staging folder
    ``.DIR.partial`` holds the checkpoint, and the finished run goes to DIR whatever the recorded
    command says (a renamed ``.runA.partial`` resumed as runB becomes runB; a folder already at
    DIR is replaced only with --overwrite typed now). The recorded command is data: parsed and
    checked like typed flags, its output paths (--out, --tensorboard, --overwrite) dropped.
    Flags typed with --resume are applied when listed in RESUME_FLAGS, refused otherwise.
    Returns (options, checkpoint), or (options, None) when DIR's staging folder held a trained
    model, which is then published.
    """
    from ..atomicfiles import staging_dir
    from ..checkpoint import read_checkpoint

    out = _resume_target(Path(args.resume))
    staging = staging_dir(out)
    parser = train_parser()
    typed = _typed(args.argv)
    if "out" in typed and Path(typed["out"]).resolve() != out.resolve():
        raise error(f"--out cannot be given with --resume: {out} is resumed into itself; drop --out {typed['out']}")
    refused = [_flag(parser, d) for d in typed if d not in (*RESUME_FLAGS, "resume", "out")]
    if refused:
        raise error(f"{', '.join(refused)} cannot change when resuming (the run keeps the options it started with); "
                    f"drop {'it' if len(refused) == 1 else 'them'}, or start a new run with --out")
    if not staging.is_dir():
        _nothing_to_resume(out, staging)
    if not (staging / "checkpoint.safetensors").exists() and _trained(staging):
        return _publish_trained(args, staging, out, typed), None
    resume = read_checkpoint(staging)
    saved = resume["extra"].get("argv")
    if not saved:
        raise error(f"the checkpoint in {staging} does not record its command; start the run again")
    if saved[0] != "train":
        raise error(f"the checkpoint in {staging} records a command that is not `vaekit train`; start the run again without --resume")
    stored = _stored_parser(staging)
    recorded = _typed(saved, lambda: _stored_parser(staging))
    argv = ["train", *_without(saved[1:], _NOT_FROM_CHECKPOINT, stored), f"--out={out}",
            *_as_tokens(parser, {d: v for d, v in typed.items() if d in RESUME_FLAGS})]
    new = stored.parse_args(argv[1:])
    # Whatever the recorded command held: DIR is the output, the typed flags decide the rest.
    new.argv, new.resume, new.out = argv, str(out), str(out)
    new.tensorboard, new.overwrite = typed.get("tensorboard"), typed.get("overwrite", False)
    if "tensorboard" in recorded and "tensorboard" not in typed:
        say(new, f"note: the resumed run writes no TensorBoard files; pass --tensorboard {recorded['tensorboard']} to continue them")
    _check_more_epochs(new, resume, typed)
    return new, resume


def _check_more_epochs(args, resume: dict, typed: dict) -> None:
    """A typed --epochs must leave the epochs already begun standing."""
    begun = resume["epoch"] if resume["step"] else resume["epoch"] - 1
    if "epochs" in typed and typed["epochs"] < begun:
        raise error(f"--epochs {typed['epochs']} is fewer than the {begun} epochs this run has already begun; "
                    f"pass --epochs {begun} or more")


def _nothing_to_resume(out: Path, staging: Path):
    if (out / "model.safetensors").exists():
        if _report_unfinished(out):
            raise error(f"{out} is already trained but its report was not finished; write it with `vaekit report {out}`")
        raise error(f"{out} already finished training; start a new run with --out")
    raise error(f"nothing to resume at {out}: no unfinished run folder {staging.name} beside it")


def _report_unfinished(out: Path) -> bool:
    """Whether a published run stopped while its report was drawn (left its finishing folder, or
    lacks report.html although its recorded command did not say --no-report)."""
    from ..atomicfiles import finishing_dir, read_json
    from ..errors import VaekitError

    if finishing_dir(out).exists():
        return True
    if (out / "report.html").exists():
        return False
    try:
        argv = (read_json(out / "config.json").get("run") or {}).get("argv")
    except (VaekitError, AttributeError):
        return False
    return isinstance(argv, list) and "--no-report" not in argv


def _publish_trained(args, staging: Path, out: Path, typed: dict) -> argparse.Namespace:
    """A run stopped after its model was saved and before it was moved into place: move it now."""
    from ..atomicfiles import lock_folder, publish_dir, remove_stale_temps

    args.overwrite = typed.get("overwrite", False)
    with lock_folder(out):
        _check_out_free(out, args, resume=True)
        remove_stale_temps(staging)
        publish_dir(staging, out)
    say(args, f"{staging.name} held a trained model: moved it to {out}/; write its report with `vaekit report {out}`")
    return args


def _list_presets() -> int:
    from .config import preset_names, read_preset, to_toml

    for name in preset_names():
        table = read_preset(name)
        print(f"{name}: {table.pop('description', '')}")
        print("    " + to_toml(table).strip().replace("\n", "\n    "))
    print("use one with: vaekit train --preset NAME --out RUN_DIR (options given on the command line win)")
    return 0


def _tracker(args, est, data):
    """The --tensorboard callback, on up to 1000 validation-like examples (the data's first ones)."""
    if not args.tensorboard:
        return None
    from ..tracking import TensorBoardTracker

    y = data.y[:1000] if est.is_conditional and data.y is not None else None
    return TensorBoardTracker(args.tensorboard, est, data.X[:1000], y, image_every=args.tensorboard_images,
                              epochs=getattr(est, "epochs", None))


def _val_data(args):
    """The --val-split data (None without it)."""
    if not args.val_split:
        return None
    from ..data import load_dataset
    from ..errors import DataError

    image = {"image_size": args.image_size, "channels": args.channels, "strict": args.strict}
    try:
        return load_dataset(args.dataset, args.val_split, data_dir=args.data_dir, label_column=args.label_column, **image)
    except DataError as e:
        raise error(f"--val-split {args.val_split}: {e}") from None


def _kl_note(est) -> str | None:
    """The line saying how the logged kl is computed, for a posterior without a closed-form KL."""
    from ..registry import POSTERIORS

    name = getattr(est, "posterior", None)
    note = getattr(POSTERIORS[name], "kl_note", None) if isinstance(name, str) and name in POSTERIORS else None
    return f"note: with --posterior {name} the kl column is {note}" if note else None


def _train_into(args, est, data, run: Path | None, resume: dict | None = None, val=None) -> None:
    import csv
    import time

    from ..atomicfiles import atomic_path, read_json, write_json

    log_lines: list[str] = []
    rows: list[dict] = []

    def log(line: str) -> None:
        log_lines.append(f"{time.strftime('%Y-%m-%d %H:%M:%S')}  {line}")
        with atomic_path(run / "train.log") as tmp:
            tmp.write_text("\n".join(log_lines) + "\n")

    def on_epoch(row: dict) -> None:
        rows.append(row)
        with atomic_path(run / "metrics.csv") as tmp, open(tmp, "w", newline="") as f:
            # Some columns (val_iw_nll) appear only every few epochs: the header is the union, blanks elsewhere.
            w = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for r in rows for k in r)), restval="")
            w.writeheader()
            w.writerows(rows)

    conditional = est.is_conditional
    labels = data.y if conditional else None
    fit_val = {} if val is None else {"X_val": val.X, "y_val": val.y if conditional else None}
    if run is None:  # a non-zero rank of a distributed run: train, write nothing
        est.fit(data.X, labels, progress=False, **fit_val)
        return
    if resume:
        log_lines.extend((run / "train.log").read_text().splitlines() if (run / "train.log").exists() else [])
        rows.extend(resume["history"])
    else:
        log(f"vaekit {' '.join(args.argv)}")
        from ..data.stream import is_streamed
        from ..train import MAX_VALIDATION

        how = " (streamed from disk: decoded by worker processes as training goes)" if is_streamed(data.X) else ""
        log(f"data: {data.name}, {len(data)} examples of shape {data.shape}{how}")
        if val is not None:
            log(f"validation: split {args.val_split!r} of {data.name}, {len(val)} examples (--val-fraction not used)")
        elif round(len(data) * (frac := getattr(est, "val_fraction", 0) or 0)) > MAX_VALIDATION:
            log(f"validation: {MAX_VALIDATION} of the {len(data)} examples held out (--val-fraction {frac:g} would "
                f"hold out {round(len(data) * frac)}; the held-out set is capped at {MAX_VALIDATION})")
    from ..checkpoint import Checkpointer

    checkpointer = None
    if args.checkpoint_every or args.checkpoint_minutes:
        checkpointer = Checkpointer(run, args.checkpoint_every, args.checkpoint_minutes, extra={"argv": args.argv})
    est.verbose = not args.quiet
    note = _kl_note(est)
    if note:
        say(args, note)
        log(note)
    tracker = _tracker(args, est, data)

    def each_epoch(row: dict) -> None:
        on_epoch(row)
        if tracker is not None:
            tracker(row)

    try:
        est.fit(data.X, labels, on_epoch=each_epoch, log=log, checkpointer=checkpointer, resume=resume, **fit_val)
    finally:
        if tracker is not None:
            tracker.close()
    est.verbose = False
    est.save(run)  # the checkpoint stays until the run is published (see _publish)
    cfg = read_json(run / "config.json")
    cfg["run"] = {
        "dataset": args.dataset, "data_dir": args.data_dir, "label_column": args.label_column, "val_split": args.val_split,
        "image_size": args.image_size, "channels": data.shape[0] if Path(args.dataset).is_dir() else args.channels,
        "argv": args.argv,
        "n_train_examples": len(data), "classes": data.classes, "command": "vaekit " + " ".join(args.argv),
    }
    write_json(run / "config.json", cfg)


def _write_figures(args, est, data, run: Path) -> None:
    """samples.png (VAEs) and reconstructions.png (ten test examples), drawn by vaekit.plots."""
    from .. import plots
    from ..data import load_dataset
    from ..errors import ConfigError, DataError

    try:
        plots.require_images(est)
    except ConfigError:  # tables: nothing to draw
        return
    if est.model_.family.has_density:
        plots.save_figure(plots.samples_figure(est, classes=data.classes), run / "samples.png")
    try:
        test = load_dataset(args.dataset, "test", data_dir=args.data_dir, label_column=args.label_column)
    except DataError:  # e.g. a file too small for a test split: show training examples instead
        test = data
    plots.save_figure(plots.reconstructions_figure(est, test.X, test.y), run / "reconstructions.png")


def _write_report(args, run: Path, data) -> None:
    """report.html for a finished run; a failure here is reported but does not undo the training."""
    from ..modelfile import read_config
    from ..report import REPORT_K, build_report, report_iw_limit

    if family_of(args.model).has_density:
        n_iw = report_iw_limit(read_config(run)["model"].get("architecture", "mlp"))
        what = f"metrics with k={REPORT_K} importance samples on up to {n_iw} test images"
    else:  # an autoencoder has no importance-weighted estimate
        what = "reconstruction error and figures on the test split"
    say(args, f"writing report.html ({what}; --no-report skips it)")
    try:
        # The training data fit the probes; the report reads the test split.
        build_report(run, train=data, shown_as=args.out, progress=sys.stderr.isatty() and not args.quiet)
    except Exception as e:  # noqa: BLE001 - the trained model matters more than its report
        print(f"vaekit: warning: report.html not written ({type(e).__name__}: {e}); run `vaekit report {args.out}` to retry", file=sys.stderr)
