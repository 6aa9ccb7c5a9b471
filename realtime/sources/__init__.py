"""Capture and replay sources behind one interface (see base.Source)."""
