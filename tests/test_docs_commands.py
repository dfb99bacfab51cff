"""The commands in the docs' tutorial and how-to pages run as written.

Every ```bash block of ``docs/getting-started/*.md`` and ``docs/how-to/*.md`` is either
run here, command by command, or preceded by ``<!-- not run: <reason> -->`` on the line
just before its fence (a GPU, a cluster, the Hugging Face Hub, an install). A block with
neither, or with a command this test cannot run (``make``, ``pip``, ``torchrun`` ...),
fails ``test_every_bash_block_is_run_or_marked`` naming its page and line.

How a page runs: its blocks in order, in a folder of its own (so a command sees what the
commands above it on the same page left, as a reader's shell would), through ``bash`` with
the project's ``.venv/bin`` first on ``PATH``. A command that changes folder (``cd``)
moves the page's later commands there; a line that only sets variables (``RUN=...``) is
run, then kept in front of the page's later commands. Shortened, never otherwise changed:

- ``dl-train`` gets ``debug=fast``'s trainer settings appended (one epoch, one batch per
  stage; not ``debug=fast`` itself, which would rename the run's ``task_name`` folder
  that later commands read); a sweep (``hparams_search=``) at most 2 trials;
- ``../shared/datasets`` is the shared datasets folder, and ``$DATA`` too;
- ``<ckpt>`` / ``<run dir>``: the last checkpoint / folder of one digits run, trained once
  per test process; ``<export dir>``: that run's ONNX export (``dl-export``);
  ``<images>``: a few PNGs; ``<image folder>``: a 3-class folder of PNGs.

Every command runs, repeats included: on one page a repeated command is the point (run it
again to resume), and a command on two pages runs in each page's folder because later
commands on each page read what it left. Only the exit status is asserted (plus the files
the tour promises): what each command does is tested by the suite's own tests.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import BIN, ROOT, SHARED_DATA, make_image_folder, run_cli

DOCS = ROOT / "docs"
PAGES = sorted(
    [*(DOCS / "getting-started").glob("*.md"), *(DOCS / "how-to").glob("*.md")]
)
MARK = re.compile(r"^\s*<!--\s*not run:\s*(\S.*?)\s*-->\s*$")
OPEN = re.compile(r"^(\s*)```bash\s*$")
CLOSE = re.compile(r"^\s*```\s*$")
# Commands this test runs: the project's console scripts and a few cheap shell tools
# the pages use to prepare inputs. Anything else (make, pip, torchrun, wandb ...) needs
# its block marked.
RUNNABLE = {"python", "pytest", "ls", "head", "printf", "mkdir", "cp", "cd", "for", "echo"}
# debug=fast's trainer settings (configs/debug/fast.yaml) without its task_name.
SHORT = (
    "trainer.max_epochs=1 trainer.limit_train_batches=1 "
    "trainer.limit_val_batches=1 trainer.limit_test_batches=1"
)
NO_RUN_FLAGS = ("--help", "--cfg", "-sc", "--info")
MAX_TRIALS = 2
# What the tour says its commands leave, checked after its page ran.
PROMISED = {
    "getting-started/tour.md": [
        "outputs/report.md",
        "outputs/report_curves.png",
        "outputs/train/runs/*/plots/learning_curves.png",
        "outputs/predict/runs/*/predictions.csv",
    ],
}


@dataclass
class Block:
    page: str
    line: int  # of the opening fence, 1-based
    reason: str | None  # the "not run" reason, None when the block is run
    commands: list[tuple[int, str]] = field(default_factory=list)


def blocks(page: Path) -> list[Block]:
    """The ```bash blocks of a page, with their commands (continuations joined,
    comment lines dropped) and the line each starts on."""
    lines = page.read_text().split("\n")
    name = page.relative_to(DOCS).as_posix()
    found, i = [], 0
    while i < len(lines):
        opening = OPEN.match(lines[i])
        if not opening:
            i += 1
            continue
        mark = MARK.match(lines[i - 1]) if i else None
        block = Block(name, i + 1, mark.group(1) if mark else None)
        indent, j, pending, start = len(opening.group(1)), i + 1, "", 0
        while not CLOSE.match(lines[j]):
            text = lines[j][indent:].rstrip()
            if text and not (text.lstrip().startswith("#") and not pending):
                start = start if pending else j + 1
                if text.endswith("\\"):
                    pending += text[:-1].rstrip() + " "
                else:
                    block.commands.append((start, (pending + text).strip()))
                    pending = ""
            j += 1
        found.append(block)
        i = j + 1
    return found


def head_word(command: str) -> str:
    """The program a command line starts with, after VAR=value assignments."""
    try:
        words = shlex.split(command, comments=True)
    except ValueError:
        words = command.split()
    for word in words:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", word):
            return word
    return ""


def runnable(command: str) -> bool:
    word = head_word(command)
    return not word or word.startswith("dl-") or word in RUNNABLE


def shorten(command: str) -> str:
    """Append the short-run settings to every ``dl-train`` in a command line, at the end
    of its own simple command (before ``&``, ``;``, ``|``, ``)`` or a comment)."""
    out, i = [], 0
    for match in re.finditer(r"(?<![\w/-])dl-train(?![\w-])", command):
        out.append(command[i : match.end()])
        end = _simple_command_end(command, match.end())
        args = command[match.end() : end]
        out.append(_short_args(args))
        i = end
    out.append(command[i:])
    return "".join(out)


def _simple_command_end(text: str, start: int) -> int:
    quote = None
    for k in range(start, len(text)):
        c = text[k]
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c in "&;|)#":
            return k
    return len(text)


def _short_args(args: str) -> str:
    if any(flag in args.split() for flag in NO_RUN_FLAGS):
        return args
    extra = SHORT
    if "hparams_search=" in args:
        args = re.sub(r"\s*hydra\.sweeper\.n_trials=\d+", "", args)
        extra += f" hydra.sweeper.n_trials={MAX_TRIALS}"
    trailing = args[len(args.rstrip()) :]
    return f"{args.rstrip()} {extra}{trailing or ' '}"


@functools.cache
def digits_run(base: Path) -> Path:
    """One short digits run per test process: the run ``<ckpt>`` and ``<run dir>`` name."""
    proc = run_cli([*SHORT.split(), f"hydra.run.dir={base / 'run'}"], cwd=base)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return base / "run"


def export_dir(run: Path) -> Path:
    out = run / "export" / "onnx"
    if not out.exists():
        ckpt = run / "checkpoints" / "last.ckpt"
        proc = run_cli([f"ckpt_path={ckpt}", "format=onnx"], cwd=run, cmd="dl-export")
        assert proc.returncode == 0, proc.stderr[-2000:]
    return out


def fill(command: str, base: Path) -> str:
    """The placeholders of docs_conventions, filled for this machine."""
    command = command.replace("../shared/datasets", str(SHARED_DATA))
    if "<ckpt>" in command or "<run dir>" in command or "<export dir>" in command:
        run = digits_run(base)
        command = command.replace("<ckpt>", str(run / "checkpoints" / "last.ckpt"))
        command = command.replace("<run dir>", str(run))
        if "<export dir>" in command:
            command = command.replace("<export dir>", str(export_dir(run)))
    if "<images>" in command:
        command = command.replace("<images>", str(make_image_folder(base / "images")))
    if "<image folder>" in command:
        command = command.replace("<image folder>", str(make_image_folder(base / "folder")))
    return command


def test_every_bash_block_is_run_or_marked() -> None:
    """A block is run here or marked with its reason; never silently skipped."""
    problems = []
    for page in PAGES:
        for block in blocks(page):
            if block.reason is not None:
                continue
            if not block.commands:
                problems.append(f"{block.page}:{block.line}: a ```bash block with no command")
            for line, command in block.commands:
                if not runnable(command):
                    problems.append(
                        f"{block.page}:{line}: `{command}` is not run by this test and its "
                        "block is not marked <!-- not run: <reason> --> on the line before "
                        "the fence"
                    )
    assert not problems, "\n".join(problems)


def test_blocks_are_found_and_shortened() -> None:
    """The parser sees marked and unmarked blocks, continuations, and shortens in place."""
    tour = {b.line: b for b in blocks(DOCS / "getting-started" / "tour.md")}
    assert any(b.reason for b in tour.values()) and any(not b.reason for b in tour.values())
    assert shorten("for s in 0 1; do dl-train seed=$s & done; wait") == (
        f"for s in 0 1; do dl-train seed=$s {SHORT} & done; wait"
    )
    assert shorten("dl-train -m hparams_search=x hydra.sweeper.n_trials=20") == (
        f"dl-train -m hparams_search=x {SHORT} hydra.sweeper.n_trials={MAX_TRIALS} "
    )
    assert shorten("dl-train --help  # groups") == "dl-train --help  # groups"


@pytest.mark.docs_commands
@pytest.mark.parametrize(
    "page", [p for p in PAGES if any(b.reason is None for b in blocks(p))],
    ids=lambda p: p.relative_to(DOCS).as_posix(),
)
def test_page_commands_run(page: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    base = tmp_path_factory.getbasetemp() / "docs_shared"
    base.mkdir(exist_ok=True)
    cwd = tmp_path_factory.mktemp(page.stem)
    (cwd / "scripts").symlink_to(ROOT / "scripts")
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DATA": str(SHARED_DATA),
        "OMP_NUM_THREADS": "1",
    }
    env.pop("HYDRA_FULL_ERROR", None)
    timings, prelude = [], ""
    for block in blocks(page):
        if block.reason is not None:
            continue
        for line, command in block.commands:
            script = prelude + shorten(fill(command, base))
            began = time.perf_counter()
            proc = subprocess.run(
                ["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True,
                timeout=300,
            )
            timings.append((time.perf_counter() - began, f"{block.page}:{line}"))
            assert proc.returncode == 0, (
                f"{block.page}:{line}: `{command}` exited {proc.returncode}\n"
                f"ran: {script}\n{proc.stdout[-1500:]}\n{proc.stderr[-2500:]}"
            )
            if not head_word(command):
                prelude += script[len(prelude):] + "\n"
            moved = re.search(r"(?:^|&&|;)\s*cd\s+(\S+)\s*(?:$|&&|;|#)", command)
            if moved:
                cwd = cwd / shlex.split(moved.group(1))[0]
    name = page.relative_to(DOCS).as_posix()
    for pattern in PROMISED.get(name, []):
        assert list(cwd.glob(pattern)), f"{name}: the page promises {pattern}"
    print(*(f"{s:6.1f}s {where}" for s, where in timings), sep="\n")
