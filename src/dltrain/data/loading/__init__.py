"""How data reaches a step: the in-memory data module every source builds on, batchers
cut by indexing (plain, padded text, memory-mapped records), on-device augmentation,
device placement within a memory budget, and the types of the data modules' arguments."""
