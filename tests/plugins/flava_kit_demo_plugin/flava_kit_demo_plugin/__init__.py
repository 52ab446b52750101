"""A small plug-in for flava_kit: an image encoder, a loss, a logger, a source and an evaluation task, declared through entry points."""
