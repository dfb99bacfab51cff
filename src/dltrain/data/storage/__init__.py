"""How data sits on disk: record caches opened memory-mapped, image decoding into them,
and checked reading of torchvision's files (IDX and pickled batches)."""
