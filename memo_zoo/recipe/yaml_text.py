"""YAML reading that refuses duplicate mapping keys.

PyYAML keeps the last of two equal keys without a word, so a recipe with ``steps: 20`` twice in
one mapping (a bad merge, a copy-paste) silently loses one of them. Here it is an error naming
the key and both lines. Merge keys (``<<: *base``) still override as YAML defines.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError

_MERGE_TAG = "tag:yaml.org,2002:merge"


class DuplicateKeyError(ConstructorError):
    """A mapping holds one key twice; ``problem_mark`` is the second occurrence."""


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that raises ``DuplicateKeyError`` on a key given twice in one mapping."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._checked: set[int] = set()

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        # Checked here, before the first flattening: flattening (of this node, or of a node that
        # merges it) copies merged keys into node.value, where a legitimate override of a merged
        # key would look like a duplicate.
        if id(node) not in self._checked:
            self._checked.add(id(node))
            seen: dict[Any, yaml.Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:
                    continue  # an unhashable key fails in construct_mapping with PyYAML's own message
                if first is not key_node:
                    raise DuplicateKeyError(
                        "while reading a mapping", node.start_mark,
                        f"duplicate key {key!r} (first given on line {first.start_mark.line + 1}); "
                        "only one value per key is allowed", key_node.start_mark)
        super().flatten_mapping(node)


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` that rejects duplicate keys."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - UniqueKeyLoader is a SafeLoader
