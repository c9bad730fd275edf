"""README's claims name what backs them (issue 26): every test file and test function README names
exists, every result file it names is committed, and every paragraph, list item or table row that
states a measured figure or a guarantee names a test, a benchmark command, a result file, or the
paper it quotes -- in itself or, for a table row, in the table's header or lead paragraph."""

import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
READMES = ["README.md", os.path.join("savedmodels", "README.md")]

# A measured figure: a percentage, a ratio (1.5x), a rate, a confidence interval, a duration or a
# size, a tolerance (1e-6). A guarantee: never, exact(ly), identical, bit for bit.
FIGURE = re.compile(r"\d\s?%|\d(\.\d+)?x\b|tasks/s|\+-|\b\d+(\.\d+)? ?(s|min|MB|GB|ms)\b|\de-\d")
GUARANTEE = re.compile(r"\bnever\b|\bexact(ly)?\b|\bidentical\b|\bbit for bit\b|\bguarantee",
                       re.IGNORECASE)
BACKING = re.compile(r"tests/\w+\.py|\btest_\w+\.py|benchmarks/[\w/]+\.py|benchmarks/results/|"
                     r"tfmeta (benchmark|quickstart)|\bet al\.|\bpublished\b|\(paper")
TEST_REFERENCE = re.compile(r"(?:tests/)?(test_\w+\.py)(?:::(\w+))?")
RESULT_REFERENCE = re.compile(r"benchmarks/results/[\w./-]*")
ITEM = re.compile(r"\s*([-*]|\d+\.) ")


def items(block) -> list:
    """A list block's items, each with its continuation lines."""
    found = []
    for number, line in block:
        if ITEM.match(line) or not found:
            found.append([])
        found[-1].append((number, line))
    return found


def blocks(text: str):
    """``(section, [(line number, line), ...])`` for each paragraph, list or table outside code
    blocks; a table's rows, and a list's items, stay one block."""
    found, fence, current, section = [], False, [], ""
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            fence = not fence
            continue
        if fence:
            continue
        if line.startswith("#") or not line.strip():
            if current:
                found.append((section, current))
                current = []
            section = line if line.startswith("#") else section
            continue
        if current and line.startswith("|") != current[-1][1].startswith("|"):
            found.append((section, current))
            current = []
        current.append((number, line))
    if current:
        found.append((section, current))
    return found


def unbacked(text: str) -> list:
    """The claims of ``text`` that name nothing that backs them: ``(line number, text)``."""
    missing = []
    found = blocks(text)
    for i, (section, block) in enumerate(found):
        table, listed = block[0][1].startswith("|"), bool(ITEM.match(block[0][1]))
        lead = " ".join(line for _, line in found[i - 1][1]) if (
            i and found[i - 1][0] == section) else ""
        if (table or listed) and (BACKING.search(lead) or (table and BACKING.search(block[0][1]))):
            continue
        for unit in ([[row] for row in block] if table else items(block) if listed else [block]):
            words = " ".join(line for _, line in unit)
            if (FIGURE.search(words) or GUARANTEE.search(words)) and not BACKING.search(words):
                missing.append((unit[0][0], words[:120]))
    return missing


@pytest.mark.parametrize("readme", READMES)
def test_every_claim_names_what_backs_it(readme):
    with open(os.path.join(ROOT, readme)) as f:
        missing = unbacked(f.read())
    assert not missing, "\n".join(f"{readme}:{n}: {words}" for n, words in missing)


def test_the_check_finds_an_unbacked_claim():
    assert unbacked("Intro.\n\nIt runs 3.1x faster than the rest.\n") == [
        (3, "It runs 3.1x faster than the rest.")]
    assert unbacked("It never loses a step (`tests/test_run.py`).\n") == []
    assert unbacked("Measured (`python benchmarks/compare.py`):\n\n| a | b |\n| 1 | 2.0x |\n") == []
    assert unbacked("Measured:\n\n| a | b |\n| 1 | 2.0x |\n") == [(4, "| 1 | 2.0x |")]
    assert unbacked("Items:\n\n* fine\n* never fails,\n  really\n") == [
        (4, "* never fails,   really")]


@pytest.mark.parametrize("readme", READMES)
def test_every_named_test_and_result_file_exists(readme):
    with open(os.path.join(ROOT, readme)) as f:
        text = f.read()
    named = TEST_REFERENCE.findall(text)
    assert named, "README names no test"
    for module, function in named:
        path = os.path.join(ROOT, "tests", module)
        assert os.path.exists(path), f"{readme} names tests/{module}, which does not exist"
        if function:
            with open(path) as f:
                assert re.search(rf"^def {function}\(", f.read(), re.MULTILINE), (
                    f"{readme} names {module}::{function}, which does not exist")
    for result in RESULT_REFERENCE.findall(text):
        assert os.path.exists(os.path.join(ROOT, result.rstrip("."))), (
            f"{readme} names {result}, which is not committed")
