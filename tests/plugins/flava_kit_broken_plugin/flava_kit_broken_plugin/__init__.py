"""A plug-in that fails to import, as one with a missing dependency does."""

import flava_kit_dependency_that_is_not_installed  # noqa: F401  (the failure under test)


class BrokenEncoder:
    """Never reached."""
