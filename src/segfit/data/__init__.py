"""Data sets: layouts and readers, splits, transforms, the Lightning DataModule, synthetic data."""
