"""Turning a row into an item by configured field names, for every source that reads named fields.

A *row* is anything a name can be looked up in: a manifest's JSON line or CSV row, an HF dataset's
row, a webdataset sample's files (decoded to text). Which name holds which item field is the
source's configuration (``text_pair_field``, ``answers_column``, ``label_ext``, ...); what a value
may be is decided here, once, so that a label, a second text or a list of answers means the same
thing whichever source holds it:

- ``text`` and ``text_pair``: a string; ``text`` may also be a non-empty list of strings, an
  image's captions (COCO's five): the item then holds them all as ``captions`` and the first as ``text``;
- ``label``: an integer (``2.0`` too), an integer-like string, or (with ``class_names``) a class
  name, read as its index; a negative integer, NaN, an empty string or nothing means "no label"
  (HF's ``ClassLabel`` writes -1 for an unlabelled split); a fraction (``3.8``, or the text
  ``"3.8"``) is a *score*, a regression target such as GLUE STS-B's, kept as a float (a
  classifier refuses it, a regressor trains on it);
- ``answers``: a list of strings, a list of dicts with an ``answer`` key (HF's VQAv2 layout), the
  same as a dict of lists (HF's ``Sequence`` of a dict), or a JSON text of any of these (a CSV cell,
  a webdataset file).

Every configured field but ``label`` is required; anything else is a :class:`DataError` naming
the place (file:line, row, shard and key) and the setting that names the field.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral, Real
from pathlib import Path
from typing import Any

from PIL import Image

from flava_kit.data.sources.base import DataError

ROLES = ("image", "text", "text_pair", "label", "answers")
"""The item fields a row can hold, besides the ``key`` every source makes itself."""

SHOWN_CLASS_NAMES = 20  # an error lists this many known names, not a thousand ImageNet classes


def read_class_names(given: Sequence[str] | str | None, owner: str, setting: str = "class_names") -> list[str] | None:
    """Names (class names, a VQA answer vocabulary: ``setting``) given as a list, or as a path to a
    file with one name per line (blank lines skipped); None when not given. No names, or a name
    given twice, is a :class:`DataError` naming ``owner``: a label's index would be ambiguous."""
    if given is None:
        return None
    if isinstance(given, str):
        path = Path(given)
        if not path.is_file():
            raise DataError(f"{owner}: {setting} '{given}' is not a file (one name per line)")
        names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    else:
        names = [str(name) for name in given]
    if not names:
        raise DataError(f"{owner}: {setting} is empty")
    twice = [name for name, count in Counter(names).items() if count > 1]
    if twice:
        raise DataError(f"{owner}: {setting} lists {', '.join(repr(n) for n in twice)} more than once")
    return names


@dataclass(frozen=True)
class Fields:
    """Where each item field is in a row, and the rules that make a row's values an item's.

    ``names`` maps a role of :data:`ROLES` to the name it has in the row (None or absent: not
    read). ``class_names`` maps label names to indices. ``spelled`` and ``setting`` say how the
    source calls a name and its setting, so errors point at what to change: ``"field '{}'"`` and
    ``"{}_field"`` (the default, a manifest's), ``"column '{}'"`` and ``"{}_column"``, ...
    """

    names: Mapping[str, str | None]
    class_names: tuple[str, ...] | None = None
    spelled: str = "field '{}'"
    setting: str = "{}_field"
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        unknown = set(self.names) - set(ROLES)
        if unknown:
            raise ValueError(f"unknown item fields {sorted(unknown)}; known: {', '.join(ROLES)}")
        if self.names.get("text_pair") is not None and self.names.get("text") is None:
            text_pair, text = self.setting.format("text_pair"), self.setting.format("text")
            raise DataError(f"{text_pair} is set but {text} is null: a second text needs a first")
        object.__setattr__(self, "_index", {name: i for i, name in enumerate(self.class_names or ())})

    def configured(self) -> dict[str, str]:
        """Role -> name of every field that is read."""
        return {role: name for role, name in self.names.items() if name is not None}

    def settings(self) -> dict[str, str]:
        """Setting -> name of every field that is read (``{"text_pair_column": "hypothesis"}``)."""
        return {self.setting.format(role): name for role, name in self.configured().items()}

    def problem(self, where: str, role: str, what: str) -> DataError:
        """A :class:`DataError` about the field of ``role``: ``where: <field> (<setting>) <what>``."""
        return DataError(f"{where}: {self.spelled.format(self.names[role])} ({self.setting.format(role)}) {what}")

    def item(self, row: Any, key: str, where: str, image: Callable[[Any, str], Image.Image] | None = None) -> dict:
        """The item in ``row``: ``key`` and each configured field. ``image(value, where)`` opens the
        image field's value (each source stores images its own way); it is called last, after the
        cheap checks, so a row with a missing text fails before its image is decoded."""
        item: dict[str, Any] = {"key": key}
        values = {role: self._value(row, role, where) for role in self.configured()}
        for role in ("text", "text_pair"):
            if role == "text" and _captions(values.get("text")):  # an image's several captions (COCO's five), for retrieval
                item["text"], item["captions"] = values["text"][0], list(values["text"])
            elif role in values:
                if not isinstance(values[role], str):
                    raise self.problem(where, role, f"holds no text: {_short(values[role])}")
                item[role] = values[role]
        if values.get("label") is not None:
            label = self.label(values["label"], where)
            if label is not None:
                item["label"] = label
        if "answers" in values:
            item["answers"] = self.answers(values["answers"], where)
        if "image" in values:
            if image is None:
                raise ValueError("Fields.item: an image field is configured but no way to open its value was given")
            item["image"] = image(values["image"], where)
        return item

    def label(self, value: Any, where: str) -> int | float | None:
        """An item's label: a class index from an integer, an integer-like string or a class name, or
        a score (a float) from a fraction or a decimal text; None for none."""
        if isinstance(value, str):
            text = value.strip()
            if text == "":
                return None
            if text in self._index:  # a name first: class names may themselves be digits ("1".."5" stars)
                return self._index[text]
            value = _number(text)
            if value is None:
                if self.class_names:
                    raise self.problem(where, "label", f"holds '{text}', which is not a class name ({self._known()})")
                raise self.problem(where, "label", f"holds '{text}', not an integer label (set class_names to read names)")
        if isinstance(value, bool) or not isinstance(value, Real) or math.isinf(value):
            raise self.problem(where, "label", f"holds no label: {_short(value)} (an integer, a class name or a score)")
        if math.isnan(value):  # pandas' missing value, in a column it made float
            return None
        if not isinstance(value, Integral) and not float(value).is_integer():
            if self.class_names:
                raise self.problem(where, "label", f"holds {float(value)}, a fraction, but class_names make labels class indices")
            return float(value)  # a score: a regression target (STS-B's 0-5 similarity)
        number = int(value)  # 2.0 too: an integer column pandas made float
        if number < 0:  # "no label", as HF's ClassLabel and the synthetic data write it
            return None
        if self.class_names and number >= len(self.class_names):
            raise self.problem(where, "label", f"holds {number}, but there are {len(self.class_names)} class names")
        return number

    def answers(self, value: Any, where: str) -> list[str]:
        """Every annotator's answer, repeats kept, from the layouts the module docstring lists."""
        given = value
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass  # not JSON: refused below, like any other non-list
        if isinstance(value, Mapping) and isinstance(value.get("answer"), (list, tuple)):
            value = value["answer"]  # HF's Sequence of a dict: a dict of lists
        if not isinstance(value, (list, tuple)):
            nor = ", nor a JSON text of one" if isinstance(given, str) else ""
            raise self.problem(where, "answers", f"holds no list of answers{nor}: {_short(given)}")
        answers = []
        for entry in value:
            answer = entry.get("answer") if isinstance(entry, Mapping) else entry
            if not isinstance(answer, str):
                raise self.problem(where, "answers", f"holds {_short(entry)} among its answers (a string, or a dict with an 'answer')")
            answers.append(answer)
        return answers

    def _value(self, row: Any, role: str, where: str) -> Any:
        """The value of ``role``'s field; a required field that is missing or empty is an error."""
        try:
            value = row[self.names[role]]
        except (KeyError, IndexError):
            value = None
        # an empty CSV cell is a missing value, except for a text: "" is a text, if a short one
        if role != "label" and (value is None or (isinstance(value, str) and value == "" and role not in ("text", "text_pair"))):
            raise self.problem(where, role, "is missing")
        return value

    def _known(self) -> str:
        names = self.class_names or ()
        shown = ", ".join(repr(n) for n in names[:SHOWN_CLASS_NAMES])
        return f"class_names: {shown}" + (f", ... ({len(names)} in all)" if len(names) > SHOWN_CLASS_NAMES else "")


def _number(text: str) -> int | float | None:
    """An integer or a finite number written in ``text``; None when it holds none."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _captions(value: Any) -> bool:
    """Whether ``value`` is a list of captions: a non-empty list (or tuple) of strings."""
    return isinstance(value, (list, tuple)) and len(value) > 0 and all(isinstance(caption, str) for caption in value)


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters: an error names a value, it does not print a row."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
