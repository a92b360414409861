"""docs/method.md defines every method number the code and docs cite (issue 17, item 6).

The code cites MEMO's method by number: items T1-T7, E1-E6 (E6 is memo-zoo's), L1-L7, I1-I4, A1-A6, D1-D3 and
sections "§0".."§11". These tests check three things. Every such citation in the repository
resolves to a heading of docs/method.md. The doc defines each item and section exactly once. Every
repository path the doc names exists. The tests read text files only: no imports of the package,
no network.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "method.md"

# The numbering of the method: letter -> highest number.
ITEMS = {"A": 6, "T": 7, "E": 6, "D": 3, "L": 7, "I": 4}  # E6: memo-zoo's expression guidance
SECTIONS = range(0, 12)  # §0 .. §11

EXPECTED_ITEMS = {f"{letter}{n}" for letter, top in ITEMS.items() for n in range(1, top + 1)}
EXPECTED_SECTIONS = {str(n) for n in SECTIONS}

# A citation of an item: one of the item letters, then a number, as a whole word. "I3D", "A100",
# "L2-normalised" and similar are not items: \b keeps the first two out, and "L2" is a defined item.
ITEM_CITATION = re.compile(r"\b([" + "".join(ITEMS) + r"])(\d{1,2})\b")
# A citation of a section: "§5", "§ 5", or a range "§1-3".
SECTION_CITATION = re.compile(r"§\s?(\d+)(?:\s*[-–]\s*§?\s?(\d+))?")

ITEM_HEADING = re.compile(r"^###\s+([A-Z]\d+)\b")
SECTION_HEADING = re.compile(r"^##\s+§(\d+)\b")

# Where citations are looked for: the package, the plugins, the evaluation suite, the benchmarks,
# the tests, the recipes, and the top-level docs.
SOURCE_DIRS = ("memo_zoo", "plugins", "evaluation", "benchmarks", "tests")


def cited_files() -> list[Path]:
    files: list[Path] = []
    for name in SOURCE_DIRS:
        files += sorted((ROOT / name).rglob("*.py"))
    files += sorted((ROOT / "recipes").glob("*.yaml"))
    files += sorted((ROOT / "docs").glob("*.md"))
    return [f for f in files if "__pycache__" not in f.parts]


def doc_lines() -> list[str]:
    return DOC.read_text(encoding="utf-8").splitlines()


def defined() -> tuple[Counter, Counter]:
    """(item -> count, section number -> count) of the doc's headings, outside code fences."""
    items: Counter = Counter()
    sections: Counter = Counter()
    fenced = False
    for line in doc_lines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            continue
        if m := ITEM_HEADING.match(line):
            items[m.group(1)] += 1
        if m := SECTION_HEADING.match(line):
            sections[m.group(1)] += 1
    return items, sections


def citations() -> list[tuple[str, int, str]]:
    """(file, line, what) for every item or section cited in the scanned files."""
    found: list[tuple[str, int, str]] = []
    for path in cited_files():
        rel = path.relative_to(ROOT).as_posix()
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            for m in ITEM_CITATION.finditer(line):
                found.append((rel, number, m.group(1) + str(int(m.group(2)))))
            for m in SECTION_CITATION.finditer(line):
                first = int(m.group(1))
                last = int(m.group(2)) if m.group(2) else first
                for n in range(first, max(first, last) + 1):
                    found.append((rel, number, f"§{n}"))
    return found


def test_doc_exists_and_stands_alone() -> None:
    text = DOC.read_text(encoding="utf-8")
    # A plain clone has no ../shared: the doc must not send readers there.
    assert "../shared" not in text


def test_every_item_and_section_is_defined_exactly_once() -> None:
    items, sections = defined()
    assert set(items) == EXPECTED_ITEMS, (
        f"missing: {sorted(EXPECTED_ITEMS - set(items))}, unexpected: {sorted(set(items) - EXPECTED_ITEMS)}")
    assert {k: v for k, v in items.items() if v != 1} == {}, "items defined more than once"
    assert set(sections) == EXPECTED_SECTIONS, (
        f"missing: {sorted(EXPECTED_SECTIONS - set(sections), key=int)}, "
        f"unexpected: {sorted(set(sections) - EXPECTED_SECTIONS, key=int)}")
    assert {k: v for k, v in sections.items() if v != 1} == {}, "sections defined more than once"


def test_items_sit_in_their_sections_in_order() -> None:
    """A in §1, T in §2, E in §3, D in §4, L in §5, I in §6, each numbered in order."""
    home = {"A": "1", "T": "2", "E": "3", "D": "4", "L": "5", "I": "6"}
    section = None
    seen: list[str] = []
    for line in doc_lines():
        if m := SECTION_HEADING.match(line):
            section = m.group(1)
        if m := ITEM_HEADING.match(line):
            item = m.group(1)
            assert home[item[0]] == section, f"{item} is under §{section}, not §{home[item[0]]}"
            seen.append(item)
    order = [f"{letter}{n}" for letter in "ATEDLI" for n in range(1, ITEMS[letter] + 1)]
    assert seen == order


def test_every_citation_resolves_to_the_doc() -> None:
    items, sections = defined()
    known = set(items) | {f"§{n}" for n in sections}
    unresolved = [f"{file}:{line}: {what}" for file, line, what in citations() if what not in known]
    assert unresolved == [], "citations with no definition in docs/method.md:\n" + "\n".join(unresolved)


def test_citations_are_found() -> None:
    """Guard against a scan that silently finds nothing (wrong root, wrong pattern)."""
    cited = {what for _, _, what in citations()}
    assert {"T4", "E3", "L5", "A6", "I2", "D3", "§10", "§11"} <= cited


def test_docs_no_longer_point_at_the_external_spec() -> None:
    offenders = [p.relative_to(ROOT).as_posix() for p in sorted((ROOT / "docs").glob("*.md"))
                 if "memo-spec.md" in p.read_text(encoding="utf-8")]
    assert offenders == []


# A repository path: starts with a top-level folder of the repository, not preceded by a word
# character, dot, slash or hyphen (so `memo_zoo_plugins/...` and `../x/plugins/...` do not count).
REPO_PATH = re.compile(r"(?<![\w./-])((?:memo_zoo|plugins|evaluation|benchmarks|tests|docs|recipes)/[\w./-]*)")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def named_paths() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    paths = {m.group(1).rstrip(".") for m in REPO_PATH.finditer(text)}
    return sorted(paths)


def test_doc_names_paths() -> None:
    assert len(named_paths()) > 50


@pytest.mark.parametrize("path", named_paths())
def test_named_path_exists(path: str) -> None:
    assert (ROOT / path).exists(), f"docs/method.md names {path}, which is not in the repository"


def test_links_resolve() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [target for target in LINK.findall(text)
               if "://" not in target and not (DOC.parent / target).exists()]
    assert missing == []
