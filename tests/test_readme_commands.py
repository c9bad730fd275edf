"""Every command README.md and savedmodels/README.md give is one that works: each `tfmeta` command
line (in code blocks and in the text) parses with the CLI's own parser and, for `train`, resolves
to a valid run config; each `python examples/...` / `python benchmarks/...` script exists and
defines the flags the command passes; each Python block's imports resolve; the Data section's
block runs on Omniglot's archive where `../shared` has it. The tour and the serving page run in
full in tests/test_readme_tour.py and tests/test_serving_readme.py, the examples' smoke modes in
tests/test_examples.py."""

import os
import re
import shlex

import pytest

from conftest import SHARED_OMNIGLOT

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
PAGES = ("README.md", os.path.join("savedmodels", "README.md"))
# Placeholders the text uses where the reader puts their own value.
PLACEHOLDERS = {"--algorithm NAME": "--algorithm maml", "--algorithm X": "--algorithm maml",
                "--config NAME": "--config quickstart", "--parallel-tasks N": "--parallel-tasks 2"}
# Spans of the text that name a flag rather than give a command.
MENTIONS = {"tfmeta evaluate --attack",  # "`tfmeta evaluate --attack` reports ..."
            "tfmeta train --config RUN/run.json --out NEW",  # tests/test_configs.py
            "tfmeta --help"}  # exits at once: tests/test_configs.py


def _text(page):
    with open(os.path.join(ROOT, page)) as f:
        return f.read()


def _blocks(text, language):
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def _shell_commands(text):
    """Each command of the bash blocks, continuation lines joined, comments and environment
    assignments dropped."""
    commands = []
    for block in _blocks(text, "bash"):
        for command in block.replace("\\\n", " ").splitlines():
            words = shlex.split(command, comments=True)
            while words and re.match(r"^[A-Z_]+=", words[0]):
                words = words[1:]
            if words:
                commands.append(words)
    return commands


def _inline_commands(text, program):
    """`program ...` spans of the text (which may wrap over lines)."""
    spans = re.findall(rf"`({re.escape(program)} [^`]+)`", text)
    return [" ".join(span.split()) for span in spans]


def _tfmeta_commands():
    found = []
    for page in PAGES:
        text = _text(page)
        found += [(page, words[1:]) for words in _shell_commands(text) if words[0] == "tfmeta"]
        for span in _inline_commands(text, "tfmeta"):
            if span in MENTIONS:
                continue
            for placeholder, value in PLACEHOLDERS.items():
                span = span.replace(placeholder, value)
            words = [w for w in shlex.split(span)[1:] if w != "..."]  # "...": elided flags
            if any(w.startswith("--") for w in words):  # a command, not a name in the text
                found.append((page, words))
    return found


def _script_commands():
    found = []
    for page in PAGES:
        text = _text(page)
        found += [words[1:] for words in _shell_commands(text) if words[0] == "python"]
        found += [shlex.split(span)[1:] for span in _inline_commands(text, "python")]
    return [words for words in found if words and words[0].startswith(("examples/",
                                                                        "benchmarks/"))]


def test_readme_tfmeta_commands_parse_and_resolve():
    from tfmeta.cli import build_parser
    from tfmeta.commands import train_config as _train_config
    from tfmeta.errors import ConfigError

    commands = _tfmeta_commands()
    assert len(commands) >= 30, commands  # the pages' commands were found
    failed = []
    for page, words in commands:
        try:
            args = build_parser().parse_args(words)
            if args.command == "train":
                _train_config(args)  # a ConfigError names the bad setting
        except (SystemExit, ConfigError) as err:
            failed.append(f"{page}: `tfmeta {' '.join(words)}`: {err}")
    assert not failed, "\n".join(failed)


def test_readme_script_commands_name_existing_scripts_and_flags():
    commands = _script_commands()
    assert len(commands) >= 12, commands
    for words in commands:
        path = os.path.join(ROOT, words[0])
        assert os.path.isfile(path), f"README runs {words[0]}, which does not exist"
        source = open(path).read()
        for flag in (w.split("=")[0] for w in words[1:] if w.startswith("--")):
            assert f'"{flag}"' in source, f"{words[0]} has no flag {flag}"


def test_readme_python_blocks_import_what_exists():
    imports = 0
    for page in PAGES:
        for block in _blocks(_text(page), "python"):
            for line in block.splitlines():
                if re.match(r"^(import|from) \S+", line):
                    exec(compile(line, page, "exec"), {})
                    imports += 1
    assert imports >= 10


@pytest.mark.skipif(not os.path.isfile(os.path.join(SHARED_OMNIGLOT,
                                                    "images_background_small1.zip")),
                    reason="Omniglot's archives are not in ../shared/data/omniglot")
def test_readme_data_block_runs_as_written(monkeypatch):
    text = _text("README.md")
    block = _blocks(text[text.index("## Data"):], "python")[0]
    monkeypatch.chdir(SHARED_OMNIGLOT)  # where images_background_small1.zip is
    scope = {}
    exec(compile(block, "README.md", "exec"), scope)
    assert tuple(scope["support_x"].shape) == (8, 5, 28, 28, 1)
    assert tuple(scope["support_y"].shape) == (8, 5)
    assert tuple(scope["query_x"].shape[:2]) == (8, 75)
