"""Model assembly: shared attention helpers now; Reference Net and Diffusion Net later (spec §1)."""
