"""A dataset that lists given records and a registry that builds it, for tests of tasks that only
read ``registry.build("dataset", ...).clips()``."""

from __future__ import annotations


class ListDataset:
    def __init__(self, records):
        self.records = records

    def clips(self):
        return list(self.records)


class DatasetRegistry:
    """Builds a ``ListDataset`` of ``records`` for any dataset config; remembers the configs asked for."""

    def __init__(self, records):
        self.records, self.configs = list(records), []

    def build(self, slot, config):
        assert slot == "dataset", slot
        self.configs.append(config)
        return ListDataset(self.records)
