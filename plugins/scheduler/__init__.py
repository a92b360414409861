"""Built-in samplers of the rectified-flow ODE (spec L1, I3)."""
