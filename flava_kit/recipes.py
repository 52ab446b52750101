"""Recipes: YAML in, validated and fully resolved recipe out, built bottom-up into modules.

A recipe is a YAML mapping::

    recipe_version: 1
    extends: flava_full          # optional: a shipped recipe's short name, or a path
    model:
      type: flava
      fusion: {type: flava_multimodal, num_layers: 4}

Resolution is ``extends`` (deep merge; a node whose ``type`` changes keeps only the keys the new
component takes) -> overrides (``a.b.c=value``, ``~a.b``) -> validation against schemas derived
from component signatures, which reports **every** problem with its recipe path and origin
(``file:line`` or the override) before anything is built -> building, children first.
"""

from __future__ import annotations

import copy
import difflib
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import pydantic
import yaml

from flava_kit.contracts import missing_members
from flava_kit.errors import BuildError, FlavaKitError, Problem, RecipeError, RegistryError
from flava_kit.registry import registry
from flava_kit.schema import SlotSpec, component_schema

RECIPE_VERSION = 1
SHIPPED_DIR = Path(__file__).parent / "recipes"
# Top-level sections besides the model: each is a class whose signature is its schema.
SECTIONS = {"data": "flava_kit.train.config:DataConfig", "train": "flava_kit.train.config:TrainConfig"}
TOP_LEVEL_KEYS = ("recipe_version", "extends", "model", *SECTIONS)
MODEL_SLOT = SlotSpec(protocol=object, kind="model", container=None, optional=False)

PathT = tuple  # a recipe path as a tuple of keys / list indices


def dotted(path: Iterable[Any]) -> str:
    """``("model", "fusion", "num_layers") -> "model.fusion.num_layers"``."""
    return ".".join(str(p) for p in path)


def shipped_recipes() -> list[str]:
    """Short names of the recipes shipped with flava_kit."""
    return sorted(p.stem for p in SHIPPED_DIR.glob("*.yaml"))


@dataclass
class _Tree:
    """A recipe being resolved: its data, where each value came from, and type swaps."""

    data: dict
    origins: dict[PathT, str] = field(default_factory=dict)
    # node path -> keys inherited from a component whose ``type`` was then changed
    swaps: dict[PathT, set] = field(default_factory=dict)

    def origin(self, path: PathT) -> str | None:
        """Where the value at ``path`` (or its nearest located ancestor) came from."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.origins:
                return self.origins[path[:end]]
        return None


@dataclass
class Recipe:
    """A validated recipe with every default explicit. ``notes`` says what resolution dropped."""

    data: dict
    notes: list[str] = field(default_factory=list)

    def to_yaml(self) -> str:
        """The resolved recipe as YAML text (keys in signature order)."""
        return yaml.safe_dump(self.data, sort_keys=False)

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_yaml` to ``path``."""
        Path(path).write_text(self.to_yaml())


# --- reading ----------------------------------------------------------------------------------
def _read_yaml(path: Path) -> _Tree:
    try:
        text = path.read_text()
    except OSError as exc:
        raise RecipeError(Problem("", f"cannot read recipe file: {exc.strerror}", origin=str(path))) from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise RecipeError(Problem("", "the recipe file is empty", expected="a mapping with 'model'", origin=str(path)))
        tree = _Tree(loader.construct_document(node))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        reason = getattr(exc, "problem", None) or str(exc)
        raise RecipeError(Problem("", f"invalid YAML: {reason}", origin=where)) from None
    finally:
        loader.dispose()
    problems: list[Problem] = []
    _locate(node, (), path, tree.origins, problems)
    if not isinstance(tree.data, dict):
        problems.append(Problem("", f"a recipe must be a mapping, got {type(tree.data).__name__}", origin=f"{path}:1"))
    if problems:
        raise RecipeError(problems)
    return tree


def _locate(node: yaml.Node, path: PathT, file: Path, origins: dict, problems: list[Problem]) -> None:
    """Record ``file:line`` of every key and item; report duplicate keys (YAML would drop one)."""
    origins.setdefault(path, f"{file}:{node.start_mark.line + 1}")
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in seen:
                problems.append(
                    Problem(dotted(path + (key,)), f"duplicate key (first at line {seen[key]}); YAML would keep only the last", origin=f"{file}:{line}")
                )
            seen[key] = line
            origins[path + (key,)] = f"{file}:{line}"
            _locate(value_node, path + (key,), file, origins, problems)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _locate(item, path + (index,), file, origins, problems)


def _find_recipe(ref: str, relative_to: Path | None) -> Path | None:
    """A shipped short name, or a path (relative to the referring file, else to the cwd)."""
    candidates = []
    if "/" not in ref and not ref.endswith((".yaml", ".yml")):
        candidates.append(SHIPPED_DIR / f"{ref}.yaml")
    base = relative_to.parent if relative_to else Path.cwd()
    candidates += [base / ref, Path(ref)]
    return next((c.resolve() for c in candidates if c.is_file()), None)


def _not_found(ref: str, path: str, origin: str | None) -> Problem:
    close = difflib.get_close_matches(ref, shipped_recipes(), n=2)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    return Problem(
        path, f"cannot find recipe '{ref}'", expected="a shipped recipe's short name or a path to a YAML file",
        suggestion=f"{hint}shipped recipes: {', '.join(shipped_recipes())}", origin=origin,
    )  # fmt: skip


def _load_file(path: Path, chain: tuple[Path, ...] = ()) -> _Tree:
    if path in chain:
        cycle = " -> ".join(str(p) for p in (*chain, path))
        raise RecipeError(Problem("extends", f"extends cycle: {cycle}", origin=str(chain[-1])))
    tree = _read_yaml(path)
    parent_ref = tree.data.pop("extends", None)
    if parent_ref is None:
        return tree
    origin = tree.origins.get(("extends",))
    if not isinstance(parent_ref, str):
        raise RecipeError(Problem("extends", f"expected a recipe name or path, got {parent_ref!r}", origin=origin))
    parent_path = _find_recipe(parent_ref, path)
    if parent_path is None:
        raise RecipeError(_not_found(parent_ref, "extends", origin))
    base = _load_file(parent_path, (*chain, path))
    return _Tree(
        _merge(base.data, tree.data, (), base.swaps),
        {**base.origins, **tree.origins},
        {p: keys - set(_get(tree.data, p) or ()) for p, keys in base.swaps.items()},
    )


def _get(data: Any, path: PathT) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _merge(base: Any, over: Any, path: PathT, swaps: dict[PathT, set]) -> Any:
    """Deep-merge ``over`` onto ``base``; a changed ``type`` marks the inherited keys as swapped."""
    if not (isinstance(base, dict) and isinstance(over, dict)):
        return copy.deepcopy(over)
    if "type" in over and "type" in base and over["type"] != base["type"]:
        swaps[path] = set(base) - set(over) - {"type"}
    merged = copy.deepcopy(base)
    for key, value in over.items():
        merged[key] = _merge(base[key], value, path + (key,), swaps) if key in base else copy.deepcopy(value)
    return merged


# --- overrides --------------------------------------------------------------------------------
def _apply_override(tree: _Tree, text: str) -> Problem | None:
    """Apply one ``a.b.c=value`` or ``~a.b``; return a problem instead of raising."""
    origin = f"override '{text}'"
    delete = text.startswith("~")
    if delete:
        key, value = text[1:], None
    elif "=" in text:
        key, raw = text.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            return Problem(key, f"the value '{raw}' is not valid YAML ({getattr(exc, 'problem', exc)})", origin=origin)
    else:
        return Problem("", "an override must be 'a.b.c=value' or '~a.b'", expected="path=value or ~path", origin=origin)
    parts = key.strip().split(".")
    if not key.strip() or any(not p for p in parts):
        return Problem(key, "the path has an empty segment", expected="dotted keys such as model.fusion.num_layers", origin=origin)
    path: PathT = tuple(int(p) if p.isdigit() else p for p in parts)
    node: Any = tree.data
    for depth, part in enumerate(path[:-1]):
        node = _step(node, part)
        if node is None:
            return _missing(tree, path[: depth + 1], origin)
    last = path[-1]
    parent_path = path[:-1]
    if isinstance(node, list):
        if not isinstance(last, int) or not -len(node) <= last < len(node):
            return Problem(dotted(path), f"no item {last} in a list of {len(node)}", origin=origin)
        if delete:
            del node[last]
        else:
            node[last] = value
    elif isinstance(node, dict):
        if delete:
            if last not in node:
                return _missing(tree, path, origin)
            del node[last]
        else:
            if last == "type" and last in node and node[last] != value:
                tree.swaps[parent_path] = tree.swaps.get(parent_path, set()) | (set(node) - {"type"})
            node[last] = value
            tree.swaps.get(parent_path, set()).discard(last)
    else:
        return Problem(dotted(parent_path), f"is a {type(node).__name__}, so '{last}' cannot be set inside it", origin=origin)
    tree.origins[path] = origin
    return None


def _step(node: Any, part: Any) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and -len(node) <= part < len(node):
        return node[part]
    return None


def _missing(tree: _Tree, path: PathT, origin: str) -> Problem:
    parent = _get(tree.data, path[:-1]) if path[:-1] else tree.data
    keys = [str(k) for k in parent] if isinstance(parent, dict) else []
    close = difflib.get_close_matches(str(path[-1]), keys, n=2)
    hint = f"did you mean {' or '.join(repr(dotted((*path[:-1], c))) for c in close)}?" if close else None
    where = dotted(path[:-1]) or "the recipe"
    return Problem(dotted(path), f"does not exist (keys of {where}: {', '.join(keys) or 'none'})", suggestion=hint, origin=origin)


# --- validation -------------------------------------------------------------------------------
class _Validator:
    """Walks a recipe against the component schemas, collecting every problem."""

    def __init__(self, tree: _Tree):
        self.tree = tree
        self.problems: list[Problem] = []
        self.notes: list[str] = []
        # (hook, resolved node, its path): cross-component checks, run once the whole recipe is resolved
        self.checks: list[tuple[Any, dict, PathT]] = []

    def problem(self, path: PathT, message: str, expected: str | None = None, suggestion: str | None = None) -> None:
        self.problems.append(Problem(dotted(path), message, expected, suggestion, self.tree.origin(path)))

    def recipe(self) -> dict:
        data = self.tree.data
        version = data.get("recipe_version", RECIPE_VERSION)
        if version != RECIPE_VERSION:
            self.problem(("recipe_version",), f"unsupported recipe_version {version!r}", expected=str(RECIPE_VERSION))
        for key in data:
            if key not in TOP_LEVEL_KEYS:
                close = difflib.get_close_matches(str(key), TOP_LEVEL_KEYS, n=1)
                self.problem((key,), "unknown top-level key", expected=", ".join(TOP_LEVEL_KEYS),
                             suggestion=f"did you mean '{close[0]}'?" if close else None)  # fmt: skip
        resolved: dict = {"recipe_version": RECIPE_VERSION}
        if "model" not in data:
            self.problem(("model",), "missing required section 'model'", expected="a mapping with a 'type' key naming a model")
        else:
            resolved["model"] = self.slot(data["model"], ("model",), MODEL_SLOT)
        for name in SECTIONS:
            if name in data:
                value = data[name]
                if not isinstance(value, dict):
                    self.problem((name,), f"expected a mapping, got {type(value).__name__}", expected=f"the '{name}' section's settings")
                    continue
                resolved[name] = self.params(value, (name,), section_class(name), f"section '{name}'", typed=False)
                self._defer_checks(section_class(name), resolved[name], (name,))
        self.run_checks(resolved)
        return resolved

    def _defer_checks(self, target: Any, node: Any, path: PathT) -> None:
        hook = getattr(target, "recipe_checks", None)
        if callable(hook) and isinstance(node, dict):
            self.checks.append((hook, node, path))

    def run_checks(self, resolved: dict) -> None:
        """Cross-component checks (see :data:`flava_kit.contracts.RecipeChecks`) over the resolved recipe.

        A check that cannot run because a value it reads is itself invalid stays silent: that
        value has its own problem already.
        """
        for hook, node, path in self.checks:
            try:
                found = list(hook(node, path, resolved))
            except Exception:
                continue
            for where, message, *hint in found:
                self.problem(tuple(where), message, suggestion=hint[0] if hint else None)

    def slot(self, value: Any, path: PathT, spec: SlotSpec) -> Any:
        if value is None:
            if not spec.optional:
                self.problem(path, "is null but a component is required", expected=spec.describe())
            return None
        if spec.container == "list":
            if not isinstance(value, list):
                self.problem(path, f"expected a list, got {type(value).__name__}", expected=spec.describe())
                return value
            return [self.node(item, path + (i,), spec) for i, item in enumerate(value)]
        if spec.container == "dict":
            if not isinstance(value, dict):
                self.problem(path, f"expected a mapping, got {type(value).__name__}", expected=spec.describe())
                return value
            return {k: self.node(item, path + (k,), spec) for k, item in value.items()}
        return self.node(value, path, spec)

    def node(self, value: Any, path: PathT, spec: SlotSpec) -> Any:
        kind = spec.kind
        names = ", ".join(registry.names(kind))
        if not isinstance(value, dict):
            self.problem(path, f"expected a {kind} node, got {type(value).__name__} {value!r}",
                         expected=f"a mapping with 'type: <{kind}>'", suggestion=f"{kind}s: {names}")  # fmt: skip
            return value
        name = value.get("type")
        if not isinstance(name, str):
            what = "missing 'type'" if name is None else f"'type' must be a name, got {name!r}"
            self.problem(path + ("type",), what, expected=f"the name of a registered {kind}", suggestion=f"{kind}s: {names}")
            return value
        try:
            entry = registry.entry(kind, name)
            target = entry.load()
        except RegistryError as exc:
            self.problem(path + ("type",), str(exc))
            return value
        resolved = {"type": entry.qualified_name, **self.params(value, path, target, f"{kind} '{name}'")}
        self._defer_checks(target, resolved, path)
        return resolved

    def params(self, value: dict, path: PathT, target: Any, label: str, typed: bool = True) -> dict:
        """Check a node's parameters against ``target``'s signature; return them with defaults filled.

        ``typed`` nodes name their component in ``type``; sections have no such key.
        """
        schema = component_schema(target)
        plain, resolved_slots = {}, {}
        for key, item in value.items():
            if key == "type" and typed:
                continue
            if key in schema.slots:
                resolved_slots[key] = self.slot(item, path + (key,), schema.slots[key])
            elif key in schema.names or schema.accepts_extra:
                plain[key] = item
            elif key in self.tree.swaps.get(path, ()):
                self.notes.append(f"{dotted(path + (key,))}: dropped, {label} does not take it")
            else:
                close = difflib.get_close_matches(str(key), schema.names, n=2)
                self.problem(path + (key,), f"unknown parameter of {label}",
                             expected=f"one of: {', '.join(schema.names) or 'no parameters'}",
                             suggestion=f"did you mean {' or '.join(repr(c) for c in close)}?" if close else None)  # fmt: skip
        for key, slot_spec in schema.slots.items():
            required = next(p.required for p in schema.parameters if p.name == key)
            if key not in value and required:
                self.problem(path + (key,), f"missing required parameter of {label}", expected=slot_spec.describe())
        try:
            params = schema.model.model_validate(plain).model_dump(mode="json")
        except pydantic.ValidationError as exc:
            for error in exc.errors():
                loc = path + tuple(error["loc"])
                param = next((p for p in schema.parameters if p.name == error["loc"][0]), None)
                expected = param.annotation_text if param else None
                if error["type"] == "missing":
                    self.problem(loc, f"missing required parameter of {label}", expected=expected)
                else:
                    self.problem(loc, f"{error['msg']} (got {error.get('input')!r})", expected=expected)
            params = plain
        resolved = {}
        for parameter in schema.parameters:  # signature order
            if parameter.name in resolved_slots:
                resolved[parameter.name] = resolved_slots[parameter.name]
            elif parameter.name in params:
                resolved[parameter.name] = params[parameter.name]
            elif parameter.slot is not None and not parameter.required:
                resolved[parameter.name] = parameter.default
        resolved.update({k: v for k, v in params.items() if k not in resolved})  # **kwargs extras
        return resolved


# --- public API -------------------------------------------------------------------------------
def _tree_from(source: str | Path | Mapping) -> _Tree:
    if isinstance(source, Mapping):
        data = copy.deepcopy(dict(source))
        parent_ref = data.pop("extends", None)
        if parent_ref is None:
            return _Tree(data, {(): "<dict>"})
        parent_path = _find_recipe(str(parent_ref), None)
        if parent_path is None:
            raise RecipeError(_not_found(str(parent_ref), "extends", "<dict>"))
        base = _load_file(parent_path)
        return _Tree(_merge(base.data, data, (), base.swaps), base.origins, base.swaps)
    path = _find_recipe(str(source), None)
    if path is None:
        raise RecipeError(_not_found(str(source), "", None))
    return _load_file(path)


def load_recipe(source: str | Path | Mapping, overrides: Iterable[str] = ()) -> Recipe:
    """Resolve and validate a recipe without building anything.

    ``source`` is a path, a shipped recipe's short name (``"flava_full"``), or a dict.
    Raises :class:`~flava_kit.errors.RecipeError` listing every problem found.
    """
    tree = _tree_from(source)
    problems = [p for p in (_apply_override(tree, o) for o in overrides) if p is not None]
    validator = _Validator(tree)
    data = validator.recipe()
    problems += validator.problems
    if problems:
        raise RecipeError(problems)
    return Recipe(data, validator.notes)


def build_node(node: Mapping, kind: str = "model", path: str = "model") -> Any:
    """Build one resolved component node (children first). Used by :func:`build`."""
    return _build(node, SlotSpec(object, kind, None, False), (path,))


def _build(value: Any, spec: SlotSpec, path: PathT) -> Any:
    if value is None:
        return None
    if spec.container == "list":
        return [_build(item, SlotSpec(spec.protocol, spec.kind, None, False), path + (i,)) for i, item in enumerate(value)]
    if spec.container == "dict":
        return {k: _build(item, SlotSpec(spec.protocol, spec.kind, None, False), path + (k,)) for k, item in value.items()}
    name = value["type"]
    built = _construct(registry.get(spec.kind, name), value, path, f"{spec.kind} '{name}'")
    if spec.protocol is not object:
        missing = missing_members(built, spec.protocol)
        if missing:
            raise BuildError(
                f"{dotted(path)}: {spec.kind} '{name}' does not fit this slot: it lacks {', '.join(missing)} "
                f"required by the {spec.protocol.__name__} contract"
            )
    try:
        built._flava_recipe = (spec.kind, copy.deepcopy(dict(value)))
    except AttributeError:  # objects without a __dict__ cannot carry their recipe
        pass
    return built


def _construct(target: Any, value: Mapping, path: PathT, label: str) -> Any:
    """Call ``target`` with a resolved node's parameters, building its child nodes first."""
    schema = component_schema(target)
    plain = {k: v for k, v in value.items() if k != "type" and k not in schema.slots}  # a section has no type
    validated = schema.model.model_validate(plain)
    kwargs = {k: getattr(validated, k) for k in type(validated).model_fields if k in plain}
    kwargs.update(validated.model_extra or {})
    for key, slot_spec in schema.slots.items():
        if key in value:
            kwargs[key] = _build(value[key], slot_spec, path + (key,))
    try:
        return target(**kwargs)
    except FlavaKitError:
        raise
    except Exception as exc:
        raise BuildError(f"{dotted(path)}: building {label} failed: {type(exc).__name__}: {exc}") from exc


def section_class(name: str) -> Any:
    """The class whose signature is the schema of top-level section ``name`` (imported on use)."""
    module, _, attribute = SECTIONS[name].partition(":")
    return getattr(importlib.import_module(module), attribute)


def build_section(recipe: Recipe, name: str) -> Any:
    """Build a resolved recipe's top-level section (``data`` or ``train``); its default when absent."""
    return _construct(section_class(name), recipe.data.get(name, {}), (name,), f"section '{name}'")


def build(source: str | Path | Mapping | Recipe, overrides: Iterable[str] = ()) -> Any:
    """Validate a recipe, then build its model bottom-up and return it.

    ``source``: a path, a shipped recipe's short name, a dict, or a loaded :class:`Recipe`.
    """
    recipe = source if isinstance(source, Recipe) else load_recipe(source, overrides)
    return build_node(recipe.data["model"])


def to_recipe(module: Any) -> dict:
    """The resolved recipe a component was built from.

    For a model (the recipe's root) a whole recipe ``{"recipe_version": 1, "model": {...}}``; for any
    other component built by a recipe, its node ``{"type": ..., ...}``. Building either again gives
    the same structure and parameter shapes.
    """
    stored = getattr(module, "_flava_recipe", None)
    if stored is None:
        raise FlavaKitError(
            f"{type(module).__name__} was not built from a recipe, so it has no recipe to return; "
            f"build it with flava_kit.build(...)"
        )
    kind, node = stored
    node = copy.deepcopy(node)
    return {"recipe_version": RECIPE_VERSION, "model": node} if kind == "model" else node
