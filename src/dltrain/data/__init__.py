"""Datasets: one module per family, all served by the in-memory batch loader."""
