"""Prediction and HTTP serving from an export folder with ONNX Runtime alone.

Nothing here imports torch, Lightning or Hydra (an import-linter contract in
pyproject.toml keeps it so): ``pip install 'dl-train[serve]'`` (onnxruntime, tokenizers,
numpy, pillow, fastapi, uvicorn) is all a deployed model needs. Inputs are prepared with
numpy, PIL and tokenizers exactly as the export's ``card.json`` says; ``dl-serve`` on a
checkpoint reuses the same preparation with a torch forward (``commands/serve_checkpoint.py``).
"""
