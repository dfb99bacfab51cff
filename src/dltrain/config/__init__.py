"""Composition helpers and checks on the composed config, run before any data loads."""
