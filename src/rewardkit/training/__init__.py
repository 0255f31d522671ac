"""Training: an explicit loop on Accelerate."""
