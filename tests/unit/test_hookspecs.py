"""Every hook is documented and every slot has exactly one hook (architecture: one hook per slot)."""

import inspect

from memo_zoo.plugin import hookspecs
from memo_zoo.recipe.schema import SLOT_FIELDS
from memo_zoo.slots import SLOTS


def _hook_functions():
    return {name: fn for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
            if hasattr(fn, "memo_zoo_spec")}


def test_every_hookspec_has_a_docstring():
    hooks = _hook_functions()
    assert hooks, "no hookspecs found"
    undocumented = [name for name, fn in hooks.items() if len(inspect.getdoc(fn) or "") < 20]
    assert not undocumented, f"hookspecs without documentation: {undocumented}"


def test_one_hook_per_slot_plus_cli():
    hooks = set(_hook_functions())
    assert hooks == {slot.hook for slot in SLOTS} | {"cli_commands"}


def test_hooks_take_no_arguments():
    for name, fn in _hook_functions().items():
        assert not inspect.signature(fn).parameters, name


def test_every_slot_has_a_place_in_the_recipe():
    assert {slot for slot, _ in SLOT_FIELDS.values()} == {slot.name for slot in SLOTS}
    assert {path: entry for path, entry in SLOT_FIELDS.items()} == {
        slot.recipe_path: (slot.name, slot.is_list) for slot in SLOTS}


def test_each_slot_hook_carries_its_protocol():
    hooks = _hook_functions()
    for slot in SLOTS:
        doc = inspect.getdoc(hooks[slot.hook])
        assert slot.recipe_path in doc and slot.factory_signature in doc, slot.name
        assert inspect.cleandoc(slot.protocol.__doc__) in doc, slot.name


def test_the_plugin_manager_knows_every_hook():
    from memo_zoo.plugin.manager import new_plugin_manager

    manager = new_plugin_manager()
    assert {slot.hook for slot in SLOTS} | {"cli_commands"} <= set(vars(manager.hook))


def test_every_hookspec_is_documented_in_docs(repo_root):
    text = (repo_root / "docs" / "writing-a-plugin.md").read_text()
    missing = [name for name in _hook_functions() if f"`{name}`" not in text]
    assert not missing, f"hooks missing from docs/writing-a-plugin.md: {missing}"
