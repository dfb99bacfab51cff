"""Where data comes from: one module per dataset family (MNIST, CIFAR, digits, MNIST-1D,
synthetic, image folders, tables, text files, Hugging Face datasets), each a subclass of
the in-memory data module (``loading/memory.py``) that only says how to read its files.
The table family keeps its preprocessing and its split bookkeeping beside it
(``tabular_prep.py``, ``tabular_split.py``); the text family its tokenizers."""
