"""Export a trained model for use outside the training stack (``dl-export``).

``card.py`` is the export folder's contract (standard library only); the other modules
write it (torch, ONNX, ONNX Runtime). ``commands/export.py`` is the command.
"""
