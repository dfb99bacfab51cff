"""Loggers (CSV, W&B) and redaction of secrets from what they record."""
