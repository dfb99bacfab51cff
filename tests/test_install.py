"""Installing dl-train anywhere: extras, the wheel, a user's project folder, dl-init."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import ROOT, run_cli

# Makes the named modules look not installed, as in a base install without an extra.
ABSENT = '''
import os, sys

class _Absent:
    names = set(os.environ["DLTRAIN_TEST_ABSENT"].split(","))

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _Absent())
'''


def _without(tmp_path: Path, *modules: str) -> dict[str, str]:
    shim = tmp_path / "absent"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(ABSENT)
    path = os.pathsep.join(p for p in (str(shim), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "DLTRAIN_TEST_ABSENT": ",".join(modules)}


def test_extras_all_is_the_union_of_the_others() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    others = {req for name, reqs in extras.items() if name not in ("all", "dev") for req in reqs}
    assert set(extras["all"]) == others
    assert {"text", "mlflow", "tensorboard"} <= set(extras)


def test_a_config_needing_a_missing_extra_fails_at_once(tmp_path: Path) -> None:
    env = _without(tmp_path, "transformers", "mlflow")
    r = run_cli(["model=hf_classifier"], tmp_path, env=env)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == (
        "error: model=hf_classifier needs the text extra — pip install 'dl-train[text]'"
    )
    r = run_cli(["logger=many", "debug=fast"], tmp_path, env=env)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == (
        "error: logger=many needs the mlflow extra — pip install 'dl-train[mlflow]'"
    )
    assert not (tmp_path / "outputs" / "debug" / "runs").exists() or not any(
        (tmp_path / "outputs" / "debug" / "runs").iterdir()
    )
