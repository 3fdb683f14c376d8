"""Every code block of the guides (docs/*.md; the walkthroughs are scripts/run_tutorials.py's) is checked.

- ```python blocks are executed, each in a fresh temporary folder, with training shortened so the
  whole file takes seconds: ``epochs=N`` in the source becomes ``epochs=1`` and the detectors'
  automatic step count is 50. Names and files a block takes as given (``df_train``, ``df_new``, a
  saved detector ``det``, ``transactions/*.parquet``) are made from a small synthetic table first.
- ```bash blocks are checked command by command: a ``vaekit ...`` line (``.venv/bin/vaekit``, with
  ``--preset`` expanded) is parsed by vaekit's own argparse parser, so a renamed or removed flag, a
  bad choice or a misspelt command fails here; ``python script.py --flag ...`` needs the script to
  exist and to declare each flag; ``make TARGET`` needs the target in the Makefile. Any other
  program fails unless it is in ``PLAIN`` below or the block is marked not-run.

A block that needs real data, a long training, a running server or a cluster is marked in the
markdown, on the line before its fence: ``<!-- not-run: needs MNIST files -->``. Its Python is
not executed (the test is skipped with that reason, so the run lists how many); in its shell
commands, vaekit lines are still parsed and other programs are allowed.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDES = sorted((ROOT / "docs").glob("*.md"))
NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(.+?)\s*-->$")
FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
# Programs a guide may run that need no check (their arguments are not vaekit's).
PLAIN = {"pip", "mkdir", "cd", "cat", "head", "tail", "sort", "ls", "export", "tensorboard", "echo"}


@dataclass
class Block:
    file: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    not_run: str | None

    @property
    def id(self) -> str:
        return f"{self.file.name}:{self.line}"


def code_blocks(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, lang = m.groups()
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
        prev = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = NOT_RUN.match(prev)
        code = "\n".join(ln[len(indent):] if ln.startswith(indent) else ln for ln in lines[i + 1 : end])
        if lang in ("python", "bash", "sh", "shell", "console"):
            blocks.append(Block(path, i + 1, lang, code, marker.group(1) if marker else None))
        i = end + 1
    return blocks


BLOCKS = [b for g in GUIDES for b in code_blocks(g)]
PYTHON = [b for b in BLOCKS if b.lang == "python"]
SHELL = [b for b in BLOCKS if b.lang != "python"]


def test_blocks_are_found_and_only_in_known_languages() -> None:
    assert len(PYTHON) >= 3 and len(SHELL) >= 15, (len(PYTHON), len(SHELL))
    for g in GUIDES:  # a fence with another language (```py, ```python3) would escape the checks
        for m in re.finditer(r"^\s*```(\w+)", g.read_text(), flags=re.M):
            assert m.group(1) in ("python", "bash", "text", "json", "toml", "csv", "html"), f"{g.name}: ```{m.group(1)}"


# -- shell blocks ------------------------------------------------------------------------------


def shell_commands(code: str) -> list[list[str]]:
    """The simple commands of a shell block, each as its words (comments, env assignments dropped)."""
    text = re.sub(r"\\\n\s*", " ", code)  # continuation lines
    commands = []
    for line in text.splitlines():
        lex = shlex.shlex(line, posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        lex.commenters = "#"
        current: list[str] = []
        for tok in list(lex) + [";"]:
            if tok in ("&&", "||", ";", "|", "&"):
                while current and re.match(r"^[A-Za-z_]\w*=", current[0]):
                    current.pop(0)
                if current:
                    commands.append(current)
                current = []
            else:
                current.append(tok)
    return commands


def check_vaekit(args: list[str]) -> None:
    from vaekit.cli import build_parser, expand_preset

    args = expand_preset(list(args))
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            ns = build_parser().parse_args(args)
    except SystemExit:
        pytest.fail(f"vaekit {shlex.join(args)}: {err.getvalue().strip()}")
    assert getattr(ns, "func", None), f"vaekit {shlex.join(args)}: no command"


def check_script(path: str, args: list[str]) -> None:
    script = ROOT / path
    assert script.is_file(), f"{path} does not exist"
    source = script.read_text()
    for flag in (a.split("=", 1)[0] for a in args if a.startswith("--")):
        assert f'"{flag}"' in source or f"'{flag}'" in source, f"{path} has no option {flag}"


def check_command(words: list[str], block: Block) -> None:
    prog = Path(words[0]).name
    if prog == "vaekit":
        return check_vaekit(words[1:])
    if prog in ("python", "python3"):
        rest = [w for w in words[1:] if w not in ("-u", "-X", "-O")]
        if rest[:2] == ["-m", "vaekit"]:
            return check_vaekit(rest[2:])
        if rest and rest[0].endswith(".py"):
            return check_script(rest[0], rest[1:])
    if prog == "make":
        targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), flags=re.M))
        for t in words[1:]:
            if "=" not in t and not t.startswith("-"):
                assert t in targets, f"make {t}: no such target in the Makefile"
        return
    if prog in PLAIN or block.not_run:
        return
    pytest.fail(f"{block.id}: `{shlex.join(words)}` is neither checked nor marked; add <!-- not-run: why --> before the block "
                "or teach tests/test_docs_code.py to check it")


@pytest.mark.parametrize("block", SHELL, ids=[b.id for b in SHELL])
def test_shell_block(block: Block) -> None:
    commands = shell_commands(block.code)
    assert commands, f"{block.id}: no command found"
    for words in commands:
        check_command(words, block)


def test_a_renamed_flag_fails_the_check() -> None:
    # What makes the checks above worth having: a flag that vaekit does not take is caught.
    with pytest.raises(pytest.fail.Exception, match="unrecognized|no-such-flag"):
        check_vaekit(["train", "--no-such-flag", "3", "--out", "runs/x"])
    with pytest.raises(pytest.fail.Exception):
        check_vaekit(["plot", "runs/x", "no-such-figure"])
    with pytest.raises(AssertionError, match="has no option"):
        check_script("bench/train_speed.py", ["--no-such-flag"])
    assert shell_commands("A=1 B=2 python x.py --a 1 \\\n  --b 2 && make docs  # c") == [["python", "x.py", "--a", "1", "--b", "2"],
                                                                                           ["make", "docs"]]


# -- python blocks -----------------------------------------------------------------------------


def _table(n: int, seed: int):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    return pd.DataFrame({"amount": rng.lognormal(3, 1, n), "hour": rng.integers(0, 24, n).astype(float),
                         "merchant": rng.choice(["grocer", "fuel", "online"], n)})


def given(folder: Path) -> dict:
    """The names and files the guides' Python takes as given, made small."""
    from vaekit.anomaly import VAEDetector

    df_train, df_new = _table(300, 0), _table(40, 1)
    VAEDetector(contamination=0.01, categorical=["merchant"]).fit(df_train).save(folder / "det")
    (folder / "transactions").mkdir()
    for i, part in enumerate((df_new[:20], df_new[20:])):
        part.assign(tx_id=range(20 * i, 20 * i + len(part))).to_parquet(folder / "transactions" / f"part-{i}.parquet")
    return {"df_train": df_train, "df_new": df_new}


@pytest.mark.parametrize("block", PYTHON, ids=[b.id for b in PYTHON])
def test_python_block(block: Block, tmp_path, monkeypatch) -> None:
    if block.not_run:
        pytest.skip(f"code block marked not-run in the guide: {block.not_run}")
    if "dask" in block.code:
        pytest.importorskip("dask.dataframe", reason="dask is not installed: pip install 'vaekit[dask]'")
    import vaekit.anomaly.detectors

    monkeypatch.setattr(vaekit.anomaly.detectors, "_AUTO_STEPS", 50)
    monkeypatch.chdir(tmp_path)
    needs = ("df_train", "df_new", '"det"', "transactions")
    namespace = {"__name__": "__docs__", **(given(tmp_path) if any(n in block.code for n in needs) else {})}
    code = re.sub(r"\bepochs=\d+", "epochs=1", block.code)
    exec(compile(code, f"{block.file}:{block.line}", "exec"), namespace)  # noqa: S102 - the guide's own code
