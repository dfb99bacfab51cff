"""Lightning callbacks of the runner: progress output, results, pruning, plots."""
