"""Readers of the dataset layouts users already have (spec §11): MEMO, Hallo, a video folder,
HDTF, VoxCeleb2, MEAD and CelebV-HQ, each a ``dataset`` component (see ``plugin.py``)."""
