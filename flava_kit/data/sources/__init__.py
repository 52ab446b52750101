"""Data sources (registry kind ``source``), one file each; importing this package registers them.

See :class:`flava_kit.contracts.Source` for what a source is. Built in: ``synthetic`` (the
embedded shapes), ``manifest`` (JSONL/CSV image-text pairs), ``image_folder``, ``labelled_folder``,
``text_lines``, ``webdataset`` (tar shards, or a folder in CLIP_benchmark's layout, see
:mod:`~flava_kit.data.sources.clip_benchmark_layout`), ``hf_dataset`` (a saved HF dataset),
``shifted_shapes`` (the synthetic classes drawn by another routine, for evaluation) and
``shapes_task`` (downstream tasks on the shapes: VQA, text pairs, image-text matching).
"""

from flava_kit.data.sources.base import Broken, DataError, IndexedSource
from flava_kit.data.sources.hf_dataset import hf_dataset
from flava_kit.data.sources.image_folder import ImageFolder
from flava_kit.data.sources.labelled_folder import LabelledImageFolder
from flava_kit.data.sources.manifest import ImageTextManifest
from flava_kit.data.sources.shapes_tasks import ShapesTaskSource
from flava_kit.data.sources.sharded import ShardedSource
from flava_kit.data.sources.shifted_shapes import ShiftedShapesSource
from flava_kit.data.sources.synthetic import SyntheticSource
from flava_kit.data.sources.text_lines import TextLines
from flava_kit.data.sources.webdataset import WebDatasetSource

__all__ = ["Broken", "DataError", "IndexedSource", "ShardedSource", "hf_dataset", "ImageFolder", "LabelledImageFolder",
           "ImageTextManifest", "ShapesTaskSource", "ShiftedShapesSource", "SyntheticSource", "TextLines", "WebDatasetSource"]  # fmt: skip
