"""Write a few test-split images of a dataset config as PNG files, to try ``dl-predict``.

    .venv/bin/python scripts/export_samples.py --out samples -n 8 data=mnist \\
        paths.data_dir=../shared/datasets

Arguments after the options are dl-train overrides that choose the data (default:
the digits set that ships with scikit-learn). Files are named ``<i>_label<k>.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir
from PIL import Image

from dltrain.commands.build import datamodule as build_datamodule

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("samples"))
    parser.add_argument("-n", type=int, default=8, help="how many images")
    parser.add_argument("overrides", nargs="*", help="dl-train overrides, e.g. data=mnist")
    args = parser.parse_args()
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["paths.output_dir=.", *args.overrides])
    # The runner's own builder: it drops the keys only the runner reads (the global batch).
    datamodule = build_datamodule(cfg)
    _, test = datamodule.load()
    args.out.mkdir(parents=True, exist_ok=True)
    for i in range(min(args.n, len(test.y))):
        # Stored values scaled to 0..255 (digits store 0..16), channels last for PIL.
        x = test.row(i).float() / datamodule.scale * 255.0
        array = x.round().clamp(0, 255).numpy().astype(np.uint8).transpose(1, 2, 0)
        image = Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)
        image.save(args.out / f"{i}_label{int(test.y[i])}.png")
    print(f"wrote {min(args.n, len(test.y))} images to {args.out}/")


if __name__ == "__main__":
    main()
