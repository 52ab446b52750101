"""The base of sources read shard by shard (webdataset tars, parquet or arrow files), with exact positions.

Every epoch the shard list is permuted (from the data seed and the epoch; the same on every rank)
and lane ``i`` of ``n`` reads every ``n``-th shard of it, so an epoch's lanes read each sample
once. Within a shard, samples pass a seeded shuffle buffer (webdataset's) that starts empty at
each shard: a lane's position is then just ``{epoch, shard, offset}`` and restoring it re-reads
at most one shard, skipping ``offset`` samples without decoding them. In ``resampled`` mode a lane
instead draws shard after shard with replacement, forever (``epoch`` stays 0, ``shard`` counts
draws): for data too big for epochs to matter, or fewer shards than readers.
"""

from __future__ import annotations

import random
from typing import Any, Iterator

from flava_kit.data.sources.base import DataError, lane_share, mixed_seed, permutation


class ShardedSource:
    """Subclasses set ``shards`` (a list of URLs or paths) and implement ``read_shard(shard)``
    (raw samples in the shard's order; a :class:`~flava_kit.data.sources.base.Broken` for what
    cannot be read) and ``decode(raw)``.

    ``shuffle`` is the sample shuffle buffer's size (0 or 1: the shard's order),
    ``shard_shuffle`` whether each epoch permutes the shard list.
    """

    shards: list[str]
    shuffle: int = 1000
    shard_shuffle: bool = True
    resampled: bool = False
    weight: float = 1.0
    owner: str = ""  # what errors name: the source type and its shards (else the class name)

    def read_shard(self, shard: str) -> Iterator[Any]:
        raise NotImplementedError

    def decode(self, raw: Any) -> dict:
        raise NotImplementedError

    def samples(self, lane: int, lanes: int, seed: int, position: dict | None = None) -> Iterator[tuple[Any, dict]]:
        """This lane's raw samples, shard after shard, each with the position after it."""
        owner = self.owner or type(self).__name__
        if not self.resampled:
            lane_share(len(self.shards), "shards", lane, lanes, owner)
        position = position or {}
        epoch, shard, offset = position.get("epoch", 0), position.get("shard", 0), position.get("offset", 0)
        empty, url = 0, None  # shards in a row that held nothing: a lane of empty shards must fail, not spin
        while True:
            if empty > (10 * len(self.shards) if self.resampled else len(self.shards)):
                raise DataError(f"{owner}: reader {lane} of {lanes} (ranks x data.workers) found no sample in {empty} "
                                f"shards in a row, the last {url}; are they empty?")  # fmt: skip
            if self.resampled:
                url = self.shards[random.Random(mixed_seed(seed, lane, shard)).randrange(len(self.shards))]
            else:
                order = permutation(len(self.shards), seed, epoch) if self.shard_shuffle else range(len(self.shards))
                mine = list(order)[lane::lanes]
                if shard >= len(mine):
                    epoch, shard, offset = epoch + 1, 0, 0
                    continue
                url = self.shards[mine[shard]]
            stream = iter(self.read_shard(url))
            if self.shuffle > 1:
                from webdataset.filters import _shuffle

                stream = _shuffle(stream, bufsize=self.shuffle, initial=self.shuffle, seed=mixed_seed(seed, epoch, lane, shard))
            empty += 1
            for index, raw in enumerate(stream):
                empty = 0
                if index >= offset:
                    yield raw, {"epoch": epoch, "shard": shard, "offset": index + 1}
            shard, offset = shard + 1, 0
