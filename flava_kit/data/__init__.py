"""Data: the image processor, tokenizers, the embedded synthetic shapes, the batches training reads
(:mod:`flava_kit.data.batches`), VQA answers (:mod:`flava_kit.data.answers`) and the sources
(:mod:`flava_kit.data.sources`, registry kind ``source``)."""
