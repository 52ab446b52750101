"""``flava-kit new-plugin NAME``: a plug-in package skeleton that works as written.

One component per kind asked for (each a small, real implementation of its contract, from
``templates/KIND.py``), the entry points that register it (``flava_kit.KIND``), a pyproject, a
README and a test per component. ``pip install ./NAME`` and the components appear in
``flava-kit ls`` and can be named in recipes.
"""

from __future__ import annotations

import re
from pathlib import Path

from flava_kit.errors import FlavaKitError

TEMPLATES = Path(__file__).parent / "templates"
KINDS = {"encoder": "ImageEncoder", "loss": "Objective", "source": "Source", "logger": "Logger", "task": "Task"}
"""The kinds a skeleton can hold, each with the class its template defines."""


def _checks(kinds: list[str]) -> str:
    """The test functions of ``kinds`` from ``templates/checks.py.tmpl`` (sections headed ``# KIND``)."""
    sections = re.split(r"^# (\w+)\n", (TEMPLATES / "checks.py.tmpl").read_text(), flags=re.M)[1:]
    by_kind = dict(zip(sections[::2], sections[1::2]))
    return "".join(f"\n\n{by_kind[kind].strip()}\n" for kind in kinds)


def new_plugin(name: str, kinds: list[str], out: str | Path = ".") -> list[Path]:
    """Write the package ``out/NAME`` (distribution ``NAME``, import package ``NAME`` with ``-`` as
    ``_``) holding one component of each of ``kinds``, named ``PACKAGE_KIND``; returns the files."""
    package = name.replace("-", "_").lower()
    if not re.fullmatch(r"[a-z][a-z0-9_]*", package):
        raise FlavaKitError(f"'{name}': a plug-in name starts with a letter and holds letters, digits, '-' and '_'")
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown or not kinds:
        raise FlavaKitError(f"kinds {', '.join(unknown) or '(none)'}: choose from {', '.join(KINDS)}")
    kinds = list(dict.fromkeys(kinds))
    root = Path(out) / name
    if root.exists():
        raise FlavaKitError(f"{root} exists already: choose another name or folder (nothing was written)")
    components = {kind: f"{package}_{kind}" for kind in kinds}
    entry_points = "".join(f'[project.entry-points."flava_kit.{kind}"]\n{components[kind]} = "{package}.{kind}:{KINDS[kind]}"\n\n' for kind in kinds)
    fill = {"{{distribution}}": name, "{{package}}": package, "{{kinds}}": ", ".join(kinds), "{{entry_points}}": entry_points,
            "{{components}}": repr(components)}  # fmt: skip

    def render(template: str) -> str:
        text = (TEMPLATES / template).read_text()
        for key, value in fill.items():
            text = text.replace(key, value)
        return text

    files = {root / "pyproject.toml": render("pyproject.toml.tmpl"),
             root / package / "__init__.py": f'"""{name}: flava_kit components ({", ".join(kinds)}), registered by entry points."""\n',
             root / "tests" / f"test_{package}.py": render("test_plugin.py.tmpl").rstrip() + "\n" + _checks(kinds),
             root / "README.md": _readme(name, components)}  # fmt: skip
    files.update({root / package / f"{kind}.py": (TEMPLATES / f"{kind}.py").read_text() for kind in kinds})
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return sorted(files)


def _readme(name: str, components: dict[str, str]) -> str:
    rows = "".join(f"- `{component}` (kind `{kind}`)\n" for kind, component in components.items())
    return (f"# {name}\n\nflava_kit components, found through entry points once installed:\n\n{rows}\n"
            f"```bash\npip install -e .          # then: flava-kit ls, and name them in recipes\npython -m pytest tests\n```\n")  # fmt: skip
