"""The audio sample rate every reader, writer and feature extractor agrees on (spec D3).

Its own module, free of PyAV, numpy and torch, so that component configs can validate against it
without importing the media code (issue 17.8); ``memo_zoo.data.media`` imports it from here.
"""

AUDIO_RATE = 16_000  # spec D3: mono, 16 kHz
