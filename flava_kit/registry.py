"""The component registry: kinds, registration, look-up, listing, and plug-in discovery.

Every component has a *kind* (``encoder``, ``fusion``, ...) and a name unique within its kind.
Components come from three places, recorded in each entry's :class:`Provenance`:

- **built-in**: registered with :func:`register` by flava_kit's own modules;
- **runtime**: registered with :func:`register` by any other code at run time;
- **plug-in**: declared by an installed distribution in the entry-point group
  ``flava_kit.<kind>``; imported only when first used.

Built-in and runtime names come first: a plug-in never shadows them, and stays reachable as
``distribution:name``. Two plug-ins claiming one name must be picked the same way.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import inspect
import threading
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, TypeVar

from flava_kit import plugins
from flava_kit.errors import PluginError, RegistryError
from flava_kit.schema import component_schema

KINDS = ("encoder", "fusion", "codebook", "masking", "loss", "head", "model", "source", "logger", "task")
"""Every kind of component, in the order recipes and listings show them."""

# Importing these packages registers every built-in component.
_BUILTIN_PACKAGES = ("encoders", "fusion", "codebooks", "masking", "heads", "losses", "models", "train.loggers", "data.sources", "evaluation.tasks")

T = TypeVar("T", bound=Callable[..., Any])


@dataclass(frozen=True)
class Provenance:
    """Where a component comes from."""

    origin: str  # "built-in", "runtime" or "plug-in"
    module: str
    distribution: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        if self.origin == "plug-in":
            return f"plug-in {self.distribution} {self.version} ({self.module})"
        return f"{self.origin} ({self.module})"


@dataclass
class Entry:
    """One registered component. Plug-in targets are imported by :meth:`load` on first use."""

    kind: str
    name: str
    provenance: Provenance
    _target: Callable[..., Any] | None = field(default=None, repr=False)
    _plugin: plugins.PluginEntryPoint | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def qualified_name(self) -> str:
        """``name``, or ``distribution:name`` for a plug-in."""
        return f"{self.provenance.distribution}:{self.name}" if self._plugin else self.name

    def load(self) -> Callable[..., Any]:
        """The registered class or factory, importing a plug-in's module if needed."""
        if self._target is None:
            with self._lock:
                if self._target is None:
                    assert self._plugin is not None
                    try:
                        self._target = self._plugin.load()
                    except Exception as exc:
                        raise PluginError(
                            f"{self.kind} '{self.name}' from plug-in distribution "
                            f"'{self.provenance.distribution}' {self.provenance.version} failed to "
                            f"import ({self._plugin.target}): {type(exc).__name__}: {exc}. "
                            f"Fix or uninstall '{self.provenance.distribution}'; recipes that do "
                            f"not use it are unaffected."
                        ) from exc
        return self._target

    @property
    def summary(self) -> str:
        """The first line of the docstring; for a plug-in not yet imported, where it comes from."""
        if self._target is None:
            return f"(plug-in from {self.provenance.distribution}; not imported yet)"
        doc = (inspect.getdoc(self._target) or "").strip()
        return doc.splitlines()[0].replace("``", "") if doc else ""

    @cached_property
    def location(self) -> str:
        """``file:line`` of the target's definition (imports a plug-in)."""
        target = inspect.unwrap(self.load())
        try:
            file = inspect.getsourcefile(target)
            line = inspect.getsourcelines(target)[1]
        except (OSError, TypeError):
            return self.provenance.module
        return f"{file}:{line}"


@dataclass(frozen=True)
class Parameter:
    """One constructor parameter of a component, as ``describe`` reports it."""

    name: str
    annotation: str
    default: Any
    required: bool


@dataclass(frozen=True)
class Description:
    """What :meth:`Registry.describe` reports about one component."""

    kind: str
    name: str
    summary: str
    doc: str
    parameters: list[Parameter]
    provenance: Provenance
    location: str

    def __str__(self) -> str:
        lines = [f"{self.kind} '{self.name}': {self.summary}", f"  from: {self.provenance}", f"  defined at: {self.location}"]
        lines.append("  parameters:" if self.parameters else "  parameters: none")
        for p in self.parameters:
            default = "required" if p.required else f"default {p.default!r}"
            lines.append(f"    {p.name}: {p.annotation}  ({default})")
        return "\n".join(lines)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        close = difflib.get_close_matches(kind, KINDS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise RegistryError(f"unknown kind '{kind}'; kinds are: {', '.join(KINDS)}.{hint}")


class Registry:
    """Thread-safe mapping ``kind -> name -> Entry`` with lazy plug-in discovery."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        self._plugins: dict[str, dict[str, list[Entry]]] | None = None
        self._builtins = "absent"  # -> "loading" -> "ready"

    # --- registration -------------------------------------------------------------------
    def add(self, kind: str, name: str, target: Callable[..., Any], *, replace: bool = False) -> None:
        """Register ``target`` (a class or a factory function) as ``kind`` ``name``."""
        _check_kind(kind)
        if not callable(target):
            raise RegistryError(f"{kind} '{name}': a component must be a class or a function, got {target!r}")
        if not name or ":" in name or "." in name:
            raise RegistryError(f"{kind} '{name}': names must be non-empty and contain no ':' or '.'")
        module = getattr(target, "__module__", "?")
        origin = "built-in" if module.split(".")[0] == "flava_kit" else "runtime"
        with self._lock:
            if origin == "runtime":  # a clash with a built-in must be seen; built-ins register while loading
                self._load_builtins()
            existing = self._entries[kind].get(name)
            if existing is not None and not replace and existing.load() is not target:
                raise RegistryError(
                    f"{kind} '{name}' is already registered ({existing.provenance}, {existing.location}); "
                    f"pass replace=True to replace it, or choose another name."
                )
            self._entries[kind][name] = Entry(kind, name, Provenance(origin, module), _target=target)

    def register(self, kind: str, name: str, *, replace: bool = False) -> Callable[[T], T]:
        """Decorator form of :meth:`add`: ``@register("encoder", "my_vit")``."""

        def decorate(target: T) -> T:
            self.add(kind, name, target, replace=replace)
            return target

        return decorate

    # --- look-up ------------------------------------------------------------------------
    def entry(self, kind: str, name: str) -> Entry:
        """The entry for ``name`` (or ``distribution:name``) in ``kind``; close matches on a miss."""
        _check_kind(kind)
        self._load_builtins()
        plugin_entries = self._plugin_entries(kind)
        if ":" in name:
            dist, _, short = name.partition(":")
            for entry in plugin_entries.get(short, []):
                if entry.provenance.distribution == dist:
                    return entry
        else:
            if name in self._entries[kind]:
                return self._entries[kind][name]
            claims = plugin_entries.get(name, [])
            if len(claims) == 1:
                return claims[0]
            if len(claims) > 1:
                options = " or ".join(f"'{e.qualified_name}'" for e in claims)
                raise PluginError(
                    f"{kind} '{name}' is claimed by several plug-in distributions "
                    f"({', '.join(f'{e.provenance.distribution} {e.provenance.version}' for e in claims)}); "
                    f"pick one by writing {options}."
                )
        raise RegistryError(self._unknown_message(kind, name))

    def get(self, kind: str, name: str) -> Callable[..., Any]:
        """The registered class or factory function (imports a plug-in on first use)."""
        return self.entry(kind, name).load()

    def names(self, kind: str) -> list[str]:
        """Every name usable in ``kind``, as :meth:`display_name` writes them."""
        return [self.display_name(e) for e in self.list(kind)]

    def display_name(self, entry: Entry) -> str:
        """``name``, or ``distribution:name`` for a plug-in whose name is taken by another entry."""
        if entry._plugin is None:
            return entry.name
        taken = entry.name in self._entries[entry.kind] or len(self._plugin_entries(entry.kind)[entry.name]) > 1
        return entry.qualified_name if taken else entry.name

    def list(self, kind: str | None = None, pattern: str = "*") -> list[Entry]:
        """Entries of ``kind`` (every kind when None) whose name matches the glob ``pattern``.

        Plug-ins are listed without being imported. A plug-in whose name is taken by a built-in
        or by another plug-in is listed under its ``distribution:name``.
        """
        kinds = KINDS if kind is None else (kind,)
        found: list[Entry] = []
        for k in kinds:
            _check_kind(k)
            self._load_builtins()
            entries = list(self._entries[k].values())
            for claims in self._plugin_entries(k).values():
                entries.extend(claims)
            found.extend(
                e
                for e in sorted(entries, key=lambda e: (e.name, e.qualified_name))
                if fnmatch.fnmatchcase(e.name, pattern) or (":" in pattern and fnmatch.fnmatchcase(e.qualified_name, pattern))
            )
        return found

    def describe(self, kind: str, name: str) -> Description:
        """Parameters (types, defaults), docstring and provenance of one component."""
        entry = self.entry(kind, name)
        target = entry.load()
        schema = component_schema(target)
        doc = inspect.getdoc(target) or ""
        return Description(
            kind=kind,
            name=self.display_name(entry),
            summary=entry.summary,
            doc=doc,
            parameters=[
                Parameter(p.name, p.annotation_text, p.default, p.required) for p in schema.parameters
            ],
            provenance=entry.provenance,
            location=entry.location,
        )

    # --- internals ----------------------------------------------------------------------
    def _unknown_message(self, kind: str, name: str) -> str:
        names = self.names(kind)
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        elsewhere = [k for k in KINDS if k != kind and name in self._entries[k]]
        text = f"unknown {kind} '{name}' (searched kind '{kind}')."
        if close:
            text += f" Did you mean {' or '.join(repr(c) for c in close)}?"
        if elsewhere:
            text += f" '{name}' is a {elsewhere[0]}, not a {kind}."
        text += f" Available: {', '.join(names) or 'none'}."
        return text

    def _load_builtins(self) -> None:
        # Other threads wait on the lock until loading is done; the loading thread itself
        # re-enters (built-in modules call add() while being imported) and finds "loading".
        if self._builtins == "ready":
            return
        with self._lock:
            if self._builtins != "absent":
                return
            self._builtins = "loading"
            try:
                for package in _BUILTIN_PACKAGES:
                    importlib.import_module(f"flava_kit.{package}")
            except BaseException:
                self._builtins = "absent"
                raise
            self._builtins = "ready"

    def _plugin_entries(self, kind: str) -> dict[str, list[Entry]]:
        if self._plugins is None:
            with self._lock:
                if self._plugins is None:
                    self._plugins = self._discover_plugins()
        return self._plugins[kind]

    @staticmethod
    def _discover_plugins() -> dict[str, dict[str, list[Entry]]]:
        table: dict[str, dict[str, list[Entry]]] = {kind: {} for kind in KINDS}
        for kind in KINDS:
            seen: set[tuple[str, str]] = set()
            for ep in plugins.discover(kind):
                if (ep.distribution, ep.name) in seen:  # the same distribution found twice on sys.path
                    continue
                seen.add((ep.distribution, ep.name))
                provenance = Provenance("plug-in", ep.module_name, ep.distribution, ep.version)
                table[kind].setdefault(ep.name, []).append(Entry(kind, ep.name, provenance, _plugin=ep))
        return table


registry = Registry()
"""The process-wide registry every recipe resolves names in."""


def register(kind: str, name: str, *, replace: bool = False) -> Callable[[T], T]:
    """Register a class or factory function as component ``name`` of ``kind``.

    >>> @register("loss", "my_loss")
    ... class MyLoss(torch.nn.Module): ...

    A duplicate name raises :class:`~flava_kit.errors.RegistryError` unless ``replace=True``.
    """
    return registry.register(kind, name, replace=replace)
