"""``python -m dltrain ...`` is ``dl-train ...`` (the same Hydra app and error boundary)."""

from dltrain.commands.cli import train_main

if __name__ == "__main__":
    train_main()
