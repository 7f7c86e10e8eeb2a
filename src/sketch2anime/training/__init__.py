"""Training: experiment configs, the loop, one module per stage."""
