"""The slot table of docs/architecture.md, rendered from ``SLOTS``.

The table sits between ``<!-- slot-table:begin -->`` and ``<!-- slot-table:end -->``; a test
(tests/unit/test_slot_doc.py) fails when it differs from what ``render_table()`` gives. To
rewrite it: ``python -m memo_zoo.slots.doc --write``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from memo_zoo.slots.slot import Slot
from memo_zoo.slots.table import SLOTS

BEGIN = "<!-- slot-table:begin -->"
END = "<!-- slot-table:end -->"
DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"
WRITE_COMMAND = "python -m memo_zoo.slots.doc --write"


def _row(slot: Slot) -> str:
    path = f"`{slot.recipe_path}`" + (" (list)" if slot.is_list else "")
    protocol = f"`{slot.protocol.__module__}.{slot.protocol.__qualname__}`"
    cells = (f"`{slot.name}`", path, f"`{slot.hook}`", f"`{slot.factory_signature}`", slot.summary, protocol)
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def render_table(slots: tuple[Slot, ...] = SLOTS) -> str:
    """The Markdown table: one row per slot, in table order."""
    head = ("| slot | recipe field | hook | factory | summary | protocol |\n"
            "| --- | --- | --- | --- | --- | --- |")
    return "\n".join([head, *map(_row, slots)])


def with_table(text: str, table: str) -> str:
    """``text`` with what lies between the markers replaced by ``table``."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the slot-table markers ({BEGIN} ... {END}) are missing or out of order")
    return text[:start + len(BEGIN)] + "\n" + table + "\n" + text[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check or rewrite the slot table in docs/architecture.md.")
    parser.add_argument("--write", action="store_true", help="rewrite the table in place")
    parser.add_argument("--doc", type=Path, default=DOC, help=f"the document (default {DOC})")
    args = parser.parse_args(argv)
    text = args.doc.read_text(encoding="utf-8")
    wanted = with_table(text, render_table())
    if args.write:
        if wanted != text:
            args.doc.write_text(wanted, encoding="utf-8")
        return 0
    if wanted != text:
        print(f"{args.doc}: the slot table differs from memo_zoo.slots; run: {WRITE_COMMAND}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
