"""Plugin machinery: hook specifications, typed records and the registry built from them."""

from memo_zoo.plugin.hookspecs import PROJECT_NAME, hookimpl
from memo_zoo.plugin.lazy import LazyFactory, lazy
from memo_zoo.plugin.types import CommandSpec, ComponentSpec
from memo_zoo.slots import SLOTS, Slot

__all__ = ["PROJECT_NAME", "SLOTS", "CommandSpec", "ComponentSpec", "LazyFactory", "Slot", "hookimpl", "lazy"]
