"""Heads on top of encoders (registry kind ``head``)."""
