"""The slots of memo-zoo: the swappable parts of MEMO, each filled by registered components.

One module per slot holds the slot's protocol (what its host calls on a built component) and its
``SLOT`` record; ``memo_zoo.slots.table.SLOTS`` lists them. The plugin hooks, the recipe's slot
fields, ``memo-zoo ls`` and the slot table in docs/architecture.md (``memo_zoo.slots.doc``) are
derived from that table. This package imports no other part of memo-zoo and no torch: it is the
bottom layer of the core, and ``memo-zoo --help`` reads it.
"""

from memo_zoo.slots.slot import Slot
from memo_zoo.slots.table import SLOT_BY_NAME, SLOTS

__all__ = ["SLOTS", "SLOT_BY_NAME", "Slot"]
