"""The slot table in docs/architecture.md is the one ``memo_zoo.slots`` renders (issue 17, item 3)."""

from __future__ import annotations

import pytest

from memo_zoo.slots import SLOTS
from memo_zoo.slots.doc import BEGIN, END, WRITE_COMMAND, render_table, with_table


def test_the_architecture_doc_holds_the_current_slot_table(repo_root):
    doc = repo_root / "docs" / "architecture.md"
    text = doc.read_text(encoding="utf-8")
    assert with_table(text, render_table()) == text, f"{doc}: the slot table is stale; run: {WRITE_COMMAND}"


def test_the_table_has_one_row_per_slot_in_table_order():
    rows = render_table().splitlines()[2:]
    assert [row.split("|")[1].strip(" `") for row in rows] == [slot.name for slot in SLOTS]


def test_rewriting_replaces_only_what_lies_between_the_markers():
    text = f"before\n{BEGIN}\nold table\n{END}\nafter\n"
    assert with_table(text, "new table") == f"before\n{BEGIN}\nnew table\n{END}\nafter\n"
    with pytest.raises(ValueError, match="markers"):
        with_table("no markers here", "new table")
