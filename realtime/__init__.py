"""Live capture, feature extraction, alignment, and publishing for the affect monitor."""
