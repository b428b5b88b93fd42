"""A Griffe extension for the API reference: the package's docstrings use Sphinx's inline markup,
which Markdown would show as written. Before mkdocstrings renders a docstring this turns

* ``:class:`~inr_gon.training.trainer.Trainer```, ``:func:`load_run```, ``:mod:`.base``` (any
  role) into a link to the object where the reference documents it (a code span otherwise; the
  name is resolved from the docstring's scope, a ``~`` shows the last component only);
* a paragraph ending in ``::`` (a literal block follows) into one ending in ``:``;

and it documents each object once, in the module that defines it: a name a module imports
(e.g. a package's re-exports listed in its ``__all__``) is not rendered again there.

The source is unchanged; ``mkdocs.yml`` loads this file (``extensions`` of the python handler).
"""

from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj):`(~?)([^`]+)`")
LITERAL = re.compile(r"(?<=\S)::$", flags=re.MULTILINE)
UNRESOLVED = (griffe.NameResolutionError, griffe.AliasResolutionError, griffe.CyclicAliasError)


def _module(obj):
    return obj if obj.is_module else obj.module


def _target(obj, name: str) -> str | None:
    """The canonical path ``name`` refers to from ``obj``'s docstring, or ``None``."""
    path = _lookup(obj, name)
    if path is None and name.startswith("inr_gon."):  # an earlier version's module path (inr_gon.siren.X)
        path = _lookup(obj, "inr_gon." + name.rsplit(".", 1)[-1])  # the package's export of that name
    return path


def _lookup(obj, name: str) -> str | None:
    try:
        if name.startswith("."):  # relative to the module's package, as in an import
            module = _module(obj)
            package = module if module.is_init_module else module.parent
            dots = len(name) - len(name.lstrip("."))
            for _ in range(dots - 1):
                package = package.parent
            path = f"{package.path}.{name.lstrip('.')}"
        elif name.startswith("inr_gon"):
            path = name
        else:
            head, _, rest = name.partition(".")
            scope = obj if obj.is_module or obj.is_class else obj.parent
            path = scope.resolve(head) + (f".{rest}" if rest else "")
        target = obj.modules_collection[path]
        return target.final_target.path if target.is_alias else target.path
    except (KeyError, ValueError, AttributeError, *UNRESOLVED):
        return None


class SphinxRoles(griffe.Extension):
    """Sphinx roles -> cross-references, ``::`` -> ``:``, imported names not rendered (see the module
    docstring)."""

    def on_package(self, *, pkg, **kwargs) -> None:
        modules = [pkg]
        while modules:
            module = modules.pop()
            modules.extend(m for m in module.modules.values() if not m.is_alias)
            for member in module.members.values():
                if member.is_alias and member.is_imported:
                    member.public = False

    def on_object(self, *, obj, **kwargs) -> None:
        if obj.is_alias or obj.docstring is None:
            return

        def link(m: re.Match) -> str:
            short, name = m.group(1), m.group(2)
            text = name.rsplit(".", 1)[-1] if short else name.lstrip(".")
            path = _target(obj, name)
            if path is None:
                return f"`{text}`"
            # an optional reference: left as the code span if the page documents no such object
            return f'<autoref identifier="{path}" optional><code>{text}</code></autoref>'

        obj.docstring.value = LITERAL.sub(":", ROLE.sub(link, obj.docstring.value))
