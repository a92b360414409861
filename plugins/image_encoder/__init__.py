"""Built-in image encoders: reference image -> one embedding for the image projector (spec A4, §10)."""
