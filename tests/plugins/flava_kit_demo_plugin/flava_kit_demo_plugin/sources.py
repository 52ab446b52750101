"""A third-party data source, written against flava_kit's ``Source`` contract without importing flava_kit."""


class WordCaptions:
    """Text-only items: caption ``n`` is three consecutive words of ``words`` starting at word ``n``.

    Lane ``i`` of ``n`` reads captions ``i, i + n, i + 2n, ...`` forever; its position is the next one.
    """

    def __init__(self, words: list[str] = ("red", "circle", "square"), weight: float = 1.0):
        self.words, self.weight = list(words), weight

    def samples(self, lane, lanes, seed, position=None):
        index = (position or {}).get("next", lane)
        while True:
            yield index, {"next": index + lanes}
            index += lanes

    def decode(self, raw):
        return {"key": f"caption-{raw}", "text": " ".join(self.words[(raw + j) % len(self.words)] for j in range(3))}
