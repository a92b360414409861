"""``GenerationWarning``: the one warning class of generation, shared by loading, inputs and emotion.

Its own module so that each of those can raise it without importing another, and so that
``-W``/``filterwarnings`` have one stable dotted path to name (``memo_zoo.generate.warning``).
"""

from __future__ import annotations


class GenerationWarning(UserWarning):
    """Input that generation can use but that deserves a look (no face found, no emotion detector, audio
    with little or no speech)."""
