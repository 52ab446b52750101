"""``labelled_folder``: images in one subfolder per class (labelled images, for classifiers)."""

from __future__ import annotations

from pathlib import Path

from flava_kit.constraints import Weight
from flava_kit.data.sources.base import DataError, IndexedSource, open_image
from flava_kit.data.sources.fields import read_class_names
from flava_kit.data.sources.image_folder import image_files
from flava_kit.registry import register

SHOWN = 20  # names listed in an error, of each order


@register("source", "labelled_folder")
class LabelledImageFolder(IndexedSource):
    """Images in one subfolder per class, labelled by the class's index (subfolders in sorted
    order), without text: for fine-tuning and evaluating image classifiers. ``class_names`` are
    the subfolder names (``_`` read as a space), or those a ``classnames.txt`` in ``root`` gives
    them (see :func:`folder_class_names`); the labels never depend on that file."""

    def __init__(self, root: str, *, weight: Weight = 1.0):
        self.root, self.weight = Path(root), weight
        if not self.root.is_dir():
            raise DataError(f"{self.root}: no such image folder")
        folders = sorted(p for p in self.root.iterdir() if p.is_dir())
        if not folders:
            raise DataError(f"{self.root}: no class subfolders (expected one folder of images per class)")
        self.class_names = folder_class_names([folder.name for folder in folders], self.root / "classnames.txt")
        self.files = [(path, label) for label, folder in enumerate(folders) for path in image_files(folder)]

    def __len__(self) -> int:
        return len(self.files)

    def read(self, index: int) -> dict:
        path, label = self.files[index]
        return {"key": path.relative_to(self.root).as_posix(), "image": open_image(path, str(path)), "label": label}


def folder_class_names(folders: list[str], names_file: Path) -> list[str]:
    """The class name of each of ``folders`` (sorted names), in their order.

    Without ``names_file``: the folder names, ``_`` read as a space. With it, by the first rule that fits:

    - **numbered folders** (every name an integer, as an export by label index writes them): line k
      names folder ``k`` (lines for numbers with no folder are classes without images, left out);
      with exactly one line per folder, the i-th line names the i-th folder in numeric order;
    - **names of the folders** (a folder's name, or it with ``_`` as a space), in any order: each
      folder takes its own line, wherever it is (lines naming no folder are left out);
    - **display names** for folders named otherwise (ImageNet's ids), none a folder's name: one
      line per folder, the i-th line for the i-th folder in sorted order.

    Anything else (some folders named, some not; a count that does not fit) is a
    :class:`DataError` listing the file's names and the folders, each in its order: a names file
    read by position against folders sorted another way would give every class another's name.
    """
    spoken = [name.replace("_", " ") for name in folders]
    if not names_file.is_file():
        return spoken
    lines = read_class_names(str(names_file), str(names_file), "the file")
    if all(name.isdigit() for name in folders):
        numbers = [int(name) for name in folders]
        if len(lines) == len(folders):
            rank = {number: i for i, number in enumerate(sorted(numbers))}
            return [lines[rank[number]] for number in numbers]
        if max(numbers) < len(lines):
            return [lines[number] for number in numbers]
        raise _mismatch(names_file, lines, folders, f"line k names the folder numbered k, but a folder is numbered {max(numbers)}",
                        "line k for the folder numbered k, or exactly one line per folder, in the folders' numeric order")  # fmt: skip
    known = set(lines)
    named = [name if name in known else said if said in known else None for name, said in zip(folders, spoken)]
    if named == [None] * len(folders) and len(lines) == len(folders):
        return lines
    if None not in named and len(set(named)) == len(named):
        return named
    missing = [name for name, line in zip(folders, named) if line is None]
    twice = sorted({line for line in named if line is not None and named.count(line) > 1})
    unused = [line for line in lines if line not in named]
    why = [f"no line names the folder{'s' * (len(missing) > 1)} {_listed(missing, repr)}"] if missing else []
    why += [f"two folders take the line {_listed(twice, repr)}"] if twice else []
    why += [f"no folder is named {_listed(unused, repr)}"] if unused else []
    raise _mismatch(names_file, lines, folders, "; ".join(why), "list the folders' names in any order, or one display name per folder "
                    "in the folders' sorted order, none of them a folder's name")  # fmt: skip


def _mismatch(names_file: Path, lines: list[str], folders: list[str], why: str, hint: str) -> DataError:
    return DataError(f"{names_file}: its {len(lines)} names do not fit the {len(folders)} class folders ({why}).\n"
                     f"    the file lists: {_listed(lines)}\n    the folders, sorted: {_listed(folders)}\n    hint: {hint}")


def _listed(names: list[str], show=str) -> str:
    more = f", ... ({len(names)} in all)" if len(names) > SHOWN else ""
    return ", ".join(show(name) for name in names[:SHOWN]) + more
