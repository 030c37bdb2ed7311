"""A run that survives: per-epoch checkpoints, the best epoch, folders written
whole, Ctrl-C, one writer per run directory, and resuming.
"""
