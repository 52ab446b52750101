"""Training objectives (registry kind ``loss``)."""
