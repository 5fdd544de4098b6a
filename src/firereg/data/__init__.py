"""Data: NIfTI I/O, preprocessing, augmentation, sources and datasets."""
