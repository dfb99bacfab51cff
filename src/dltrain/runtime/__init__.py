"""Process settings: start-up, allocator, device and thread settings, per-batch hook trimming."""
