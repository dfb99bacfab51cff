"""What a run leaves and shows: results.json, history, plots, terminal output, progress."""
