"""Datasets, in three packages: ``sources`` (one module per dataset family), ``loading``
(the in-memory data module, batchers, augmentation, placement) and ``storage`` (record
caches, decoding, torchvision's files). All are served by the in-memory batch loader."""
