"""Every command README.md and docs/ show runs as written, from a fresh clone after the
set-up, with the project's environment active (the README says so once: `make` targets put
`.venv/bin` on PATH themselves; anything else needs `source .venv/bin/activate` or the
`.venv/bin/` prefix).

A command is a line of a ```bash block, or an inline code span that starts with a command
this test knows (make, snakemake, python, .venv/bin/..., git) and has arguments. Each runs
in a copy of the checkout's tracked files (a fresh clone) in the form that is cheap and
still fails on a wrong command:

* ``make ARGS``: ``make -n ARGS`` (the target exists, its variables parse);
* ``snakemake ARGS``: ``snakemake ARGS -n`` (the DAG builds with that config and profile);
  ``--unlock`` and ``--lint`` as written; a command that needs what no fresh clone has
  (``--report``: a finished run; ``--software-deployment-method conda``: conda) has its
  arguments parsed by Snakemake's own parser instead;
* ``python -m M ARGS`` / ``python FILE ARGS``: ``--help``, which must exit 0 and name every
  ``--option`` the documented command uses;
* ``git checkout C`` / ``git show C:PATH``: the commit (and file) exists in this history;
  ``git log ...`` as written.

A file a command names as the user's own (``my.yaml``) is made by :data:`USER_FILES`.
Anything else fails, naming the page and the command: a page may not show a command this
test cannot check.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
COMMANDS = ("make", "snakemake", "python", ".venv/bin/", "git")
FENCE = re.compile(r"^\s*```\s*([\w-]*)\s*$")
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
# The user's own files the docs' commands name, as the test makes them: an empty config file
# (every key its default).
USER_FILES = {"my.yaml": "{}\n", "paper.yaml": "{}\n"}
# Snakemake flags whose command needs what a fresh clone lacks: checked by Snakemake's parser.
NEEDS = {"--report": "a finished run", "--software-deployment-method": "conda on PATH"}
RUNS_AS_WRITTEN = {"--unlock", "--lint"}


@dataclass(frozen=True)
class Command:
    page: str
    text: str

    def __str__(self) -> str:
        return f"{self.page}: `{self.text}`"


def page_commands(name: str, text: str) -> list[Command]:
    """The commands of one page: each line of its shell blocks (continuations joined,
    comments dropped) and each inline span that starts with a known command and has arguments."""
    found, block, language = [], None, None
    for line in text.splitlines():
        fence = FENCE.match(line)
        if fence and block is None:
            block, language = [], fence.group(1).lower()
            continue
        if fence:
            if language in SHELL_LANGUAGES:
                for command in "\n".join(block).replace("\\\n", " ").splitlines():
                    command = " ".join(re.sub(r"\s+#.*$", "", command).split())
                    if command and not command.startswith("#"):
                        found.append(Command(name, command))
            block = None
            continue
        if block is not None:
            block.append(line)
            continue
        for span in re.findall(r"`([^`\n]+)`", line):
            span = span.strip()
            if span.startswith(COMMANDS) and len(span.split()) > 1:
                found.append(Command(name, span))
    return found


def all_commands() -> list[Command]:
    seen, out = set(), []
    for page in PAGES:
        for command in page_commands(page.relative_to(REPO).as_posix(), page.read_text()):
            if command.text not in seen:
                seen.add(command.text)
                out.append(command)
    return out


def fresh_clone(tmp: Path) -> Path:
    """The checkout's tracked (and new, not ignored) files copied to ``tmp``, the user's own
    files of :data:`USER_FILES` beside them, and ``.venv`` pointing at this environment."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           check=True, capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        if (REPO / rel).is_file():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_bytes((REPO / rel).read_bytes())
    for name, text in USER_FILES.items():
        (tmp / name).write_text(text)
    (tmp / ".venv").symlink_to(Path(sys.executable).absolute().parents[1])  # the venv, not python's own prefix
    return tmp


def environment() -> dict:
    """The activated environment: this interpreter's bin folder first on PATH."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def check(command: Command, clone: Path) -> str | None:
    """None when ``command`` runs (in its cheap form) in ``clone``; else what went wrong."""
    try:
        words = shlex.split(command.text)
    except ValueError as error:
        return f"not a shell command ({error})"
    program = words[0].removeprefix(".venv/bin/")
    if words[0].startswith(".venv/bin/") and not (clone / words[0]).exists():
        return f"{words[0]}: no such program in the environment"
    if program == "make":
        return _run(["make", "-n", *words[1:]], clone)
    if program == "snakemake":
        return _snakemake(words[1:], clone)
    if program in ("python", "python3"):
        return _python(words[1:], clone)
    if program == "git":
        return _git(words[1:])
    return f"{program}: not a command the docs may show (known: {', '.join(COMMANDS)})"


def _run(args: list[str], clone: Path, timeout: int = 300) -> str | None:
    done = subprocess.run(args, cwd=clone, capture_output=True, text=True, env=environment(), timeout=timeout)
    if done.returncode != 0:
        return f"`{shlex.join(args)}` exited {done.returncode}: {(done.stderr or done.stdout).strip()[-600:]}"
    return None


def _snakemake(args: list[str], clone: Path) -> str | None:
    needs = [flag for flag in NEEDS if flag in args]
    if needs:
        from snakemake.cli import get_argument_parser

        try:
            get_argument_parser().parse_args(args)
        except SystemExit:
            return f"Snakemake's parser refuses {args} (checked by parsing only: it needs {NEEDS[needs[0]]})"
        return None
    if RUNS_AS_WRITTEN & set(args):
        return _run([sys.executable, "-m", "snakemake", *args], clone)
    return _run([sys.executable, "-m", "snakemake", *args, "-n", "--quiet", "rules"], clone)


def _python(args: list[str], clone: Path) -> str | None:
    if not args:
        return "python without a module or script"
    target = args[:2] if args[0] == "-m" else args[:1]
    for word in args[len(target):]:  # a subcommand (`docs snapshot ...`) has a --help of its own
        if not re.fullmatch(r"[a-z][\w-]*", word):
            break
        target = [*target, word]
    if args[0] != "-m" and not (clone / args[0]).is_file():
        return f"{args[0]}: no such file"
    done = subprocess.run([sys.executable, *target, "--help"], cwd=clone, capture_output=True, text=True,
                          env=environment(), timeout=120)
    if done.returncode != 0:
        return f"`python {shlex.join(target)} --help` exited {done.returncode}: {done.stderr.strip()[-600:]}"
    own = args[len(target):]
    ends = [i for i, a in enumerate(own) if a.lstrip("[") == "--"]  # what follows `--` is another command's
    own = own[:ends[0]] if ends else own
    options = {re.split(r"[=\]]", a.lstrip("["))[0] for a in own if a.lstrip("[").startswith("--")}
    missing = sorted(o for o in options if o not in done.stdout)
    return f"its --help names no {', '.join(missing)}" if missing else None


def _git(args: list[str]) -> str | None:
    if args[:1] == ["checkout"] and len(args) == 2:
        objects = [f"{args[1]}^{{commit}}"]
    elif args[:1] == ["show"] and len(args) >= 2 and ":" in args[1]:
        objects = [args[1]]
    elif args[:1] == ["log"]:  # read-only: runs as written
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return None if done.returncode == 0 else f"git {shlex.join(args)} exited {done.returncode}: {done.stderr}"
    else:
        return f"git {shlex.join(args)}: only `git checkout COMMIT`, `git show COMMIT:PATH` and `git log` are checked"
    shallow = subprocess.run(["git", "rev-parse", "--is-shallow-repository"], cwd=REPO, capture_output=True,
                             text=True).stdout.strip() == "true"
    for obj in objects:
        if subprocess.run(["git", "cat-file", "-e", obj], cwd=REPO, capture_output=True).returncode != 0:
            if shallow:
                pytest.skip(f"{obj}: this clone is shallow, so an older commit cannot be checked here")
            return f"{obj}: not in this repository's history"
    return None


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    return fresh_clone(tmp_path_factory.mktemp("fresh-clone"))


def test_the_pages_show_commands_and_the_readme_says_how_to_run_them():
    commands = all_commands()
    assert {"make demo", "make test", "make quick", "make gflops"} <= {c.text for c in commands}
    assert sum(c.text.startswith("snakemake") for c in commands) >= 5
    readme = (REPO / "README.md").read_text()
    assert "source .venv/bin/activate" in readme


@pytest.mark.parametrize("command", all_commands(), ids=str)
@pytest.mark.slow
def test_a_documented_command_runs_as_written(command, clone):
    problem = check(command, clone)
    assert problem is None, f"{command}: {problem}"


@pytest.mark.slow
@pytest.mark.parametrize("made_up", [
    "make no-such-target",
    "snakemake --cores all --configfile no-such.yaml",
    "snakemake --cores all --no-such-flag",
    "snakemake --report report.zip --no-such-flag",
    "python -m compress_recover.no_such_module",
    "python benchmarks/stage_times.py --no-such-option",
    "python benchmarks/no_such_script.py",
    ".venv/bin/no-such-program --help",
    "git checkout 0000000000000000000000000000000000000000",
    "git show 2d476e4:no/such/file.yaml",
    "git clone",
    "pip install something",
])
def test_a_made_up_command_fails_the_check(made_up, clone):
    assert check(Command("made-up.md", made_up), clone) is not None


def test_commands_are_read_from_shell_blocks_and_inline_spans_only():
    page = ("Run `make demo` or `snakemake --cores 1`; `make` alone and `python3` are names.\n"
            "```bash\nsnakemake --cores all \\\n  --configfile my.yaml  # yours\n# a comment\n```\n"
            "```yaml\nmodels: {}\n```\n"
            "Prose between blocks with `config.yaml`.\n"
            "```\nplain text, not a command\n```\n")
    assert [c.text for c in page_commands("p.md", page)] == [
        "make demo", "snakemake --cores 1", "snakemake --cores all --configfile my.yaml"]
