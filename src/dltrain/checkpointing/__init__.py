"""Checkpoint IO, resume, signals, mid-epoch saves and the NaN guard: runs that survive kills."""
