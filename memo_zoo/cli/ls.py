"""``memo-zoo ls [SLOT]``: what is registered, who registered it, and each component's options."""

from __future__ import annotations

import argparse
import types
import typing
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from memo_zoo.cli.registry import registry
from memo_zoo.errors import MemoZooError
from memo_zoo.plugin.manager import Registered, Registry
from memo_zoo.slots import SLOT_BY_NAME, SLOTS
from memo_zoo.plugin.types import CommandSpec


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("slot", nargs="?", help=f"one slot: {', '.join(s.name for s in SLOTS)}")


def type_name(annotation: Any) -> str:
    """A short readable name for a field's type (``float``, ``'softmax' | 'released'``, ...)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is not None:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(type_name(a) for a in args)}]"
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: FieldInfo) -> str:
    if field.default is PydanticUndefined:
        return "required" if field.default_factory is None else repr(field.default_factory())
    return repr(field.default)


def _source(entry: Registered) -> str:
    return entry.plugin + (f" ({entry.distribution})" if entry.distribution else "")


def render_overview(reg: Registry) -> str:
    lines = []
    for slot in SLOTS:
        entries = reg.components.get(slot.name, {})
        lines.append(f"{slot.name}: {slot.summary}")
        if not entries:
            lines.append("  (none registered)")
        width = max((len(k) for k in entries), default=0)
        pwidth = max((len(_source(e)) for e in entries.values()), default=0)
        for kind in sorted(entries):
            entry = entries[kind]
            lines.append(f"  {kind:<{width}}  {_source(entry):<{pwidth}}  {entry.spec.summary}")
    if reg.skipped:
        lines.append("")
        lines += [f"skipped plugin {name}: {why}" for name, why in sorted(reg.skipped.items())]
    return "\n".join(lines)


def render_slot(reg: Registry, slot_name: str) -> str:
    if slot_name not in SLOT_BY_NAME:
        raise MemoZooError(f"unknown slot {slot_name!r}; slots: {', '.join(s.name for s in SLOTS)}")
    slot = SLOT_BY_NAME[slot_name]
    lines = [f"{slot.name}: {slot.summary}"]
    if slot.build_args:
        lines.append(f"  built with: {', '.join(slot.build_args)}")
    entries = reg.components.get(slot.name, {})
    if not entries:
        lines.append("  (none registered)")
    for kind in sorted(entries):
        entry = entries[kind]
        lines += ["", f"  {kind}  [{_source(entry)}]", f"    {entry.spec.summary}"]
        fields = entry.spec.config.model_fields
        if not fields:
            lines.append("    (no options)")
        for name, field in fields.items():
            desc = f"  {field.description}" if field.description else ""
            lines.append(f"    {name}: {type_name(field.annotation)} = {_default(field)}{desc}")
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    reg = registry()
    print(render_slot(reg, args.slot) if args.slot else render_overview(reg))
    return 0


LS = CommandSpec(
    name="ls",
    help="list slots and their registered components (with options when a slot is given)",
    configure=_configure,
    run=_run,
    example="memo-zoo ls temporal",
)
