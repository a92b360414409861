"""A component factory named by reference, imported only when it is called (issue 17.8).

``ComponentSpec.factory`` may be ``lazy("package.module:build")`` instead of the function itself.
Registering such a component imports nothing, so the commands that only read the components'
configs (``memo-zoo ls``, ``validate``, ``schema``) never import the component modules and the
libraries behind them (torch). The first call imports the module; later calls find it in
``sys.modules``. The registry binds the plugin's name to the reference when it collects the
component, so a reference that does not resolve names both.
"""

from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from memo_zoo.errors import PluginError

_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_REFERENCE = re.compile(rf"^{_IDENTIFIER}(\.{_IDENTIFIER})*:{_IDENTIFIER}(\.{_IDENTIFIER})*$")


class _ResolvedSignature:
    """``__signature__`` of a :class:`LazyFactory`: the target's, which imports it.

    On the class itself it is None, so ``inspect.signature(LazyFactory)`` still describes the
    dataclass instead of failing on a property object.
    """

    def __get__(self, instance: LazyFactory | None, owner: type) -> inspect.Signature | None:
        if instance is None:
            return None
        return inspect.signature(instance.resolve())


@dataclass(frozen=True)
class LazyFactory:
    """``reference`` is ``"module.path:attribute"`` (the attribute may be dotted: ``Class.method``).

    ``plugin`` is the name of the plugin that registered it, set by the registry
    (:meth:`for_plugin`); it only makes error messages name the plugin, so it is left out of
    equality and hashing.
    """

    reference: str
    plugin: str | None = field(default=None, compare=False)

    __signature__ = _ResolvedSignature()

    def __post_init__(self) -> None:
        if not isinstance(self.reference, str) or not _REFERENCE.match(self.reference):
            raise PluginError(f"{self._where()}factory reference {self.reference!r} must look like "
                              "'package.module:function' (a dotted module path, a colon, an attribute)")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"lazy({self.reference!r})"

    def for_plugin(self, plugin: str) -> LazyFactory:
        """The same reference, its errors naming ``plugin``."""
        return replace(self, plugin=plugin)

    @property
    def module(self) -> str:
        return self.reference.partition(":")[0]

    def resolve(self) -> Callable[..., Any]:
        """Import the module and return the attribute; PluginError naming the plugin and the
        reference when the module cannot be imported, lacks the attribute, or it is not callable."""
        module_name, _, attribute = self.reference.partition(":")
        try:
            target: Any = importlib.import_module(module_name)
        except ImportError as error:
            raise PluginError(f"{self._where()}factory {self.reference!r} cannot be imported: "
                              f"{type(error).__name__}: {error}") from error
        for part in attribute.split("."):
            try:
                target = getattr(target, part)
            except AttributeError:
                raise PluginError(f"{self._where()}factory {self.reference!r}: {module_name} has no "
                                  f"attribute {attribute!r}") from None
        if not callable(target):
            raise PluginError(f"{self._where()}factory {self.reference!r} is not callable "
                              f"(a {type(target).__name__})")
        return target

    def _where(self) -> str:
        return f"plugin {self.plugin!r}: " if self.plugin else ""


def lazy(reference: str) -> LazyFactory:
    """A factory that imports ``reference`` (``"package.module:build"``) when first called."""
    return LazyFactory(reference)
