"""A small plug-in for flava_kit: an image encoder and a loss, declared through entry points."""
