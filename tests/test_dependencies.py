"""Declared dependency ranges: an environment outside them gets an upgrade line, not a bug
report; the floors `make test-min` installs are the ones pyproject.toml declares."""

from __future__ import annotations

import importlib.util
from importlib import metadata

import pytest
from packaging.version import Version

from conftest import ROOT
from dltrain import errors

SCRIPT = ROOT / "scripts" / "min_constraints.py"
DECLARED = ["lightning<3,>=2.6", "torch<3,>=2.4", "xgboost<4,>=2.1; extra == \"tabular\""]


def fake_environment(monkeypatch: pytest.MonkeyPatch, versions: dict[str, str | None]) -> None:
    def version(name: str) -> str:
        if versions.get(name, "x") is None:
            raise metadata.PackageNotFoundError(name)
        return versions.get(name, "99.0")

    monkeypatch.setattr(metadata, "requires", lambda dist: DECLARED)
    monkeypatch.setattr(metadata, "version", version)


def test_an_old_lightning_is_named_instead_of_a_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_environment(monkeypatch, {"lightning": "2.5.0", "torch": "2.14.1", "xgboost": "1.0"})
    code, message = errors.describe(TypeError("fit() got an unexpected keyword 'weights_only'"))
    assert (code, message) == (
        2,
        "lightning 2.5.0 is installed, but dl-train needs lightning<3,>=2.6 — "
        "pip install 'lightning<3,>=2.6'",
    )


def test_a_missing_core_dependency_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_environment(monkeypatch, {"lightning": "2.6.0", "torch": None})
    assert errors.outdated_dependency() == (
        "torch is missing, but dl-train needs torch<3,>=2.4 — pip install 'torch<3,>=2.4'"
    )


def test_an_environment_inside_the_ranges_still_reports_the_bug(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_environment(monkeypatch, {"lightning": "2.6.6", "torch": "2.14.1", "xgboost": "1.0"})
    code, message = errors.describe(TypeError("boom"))
    assert code == 1 and message.startswith("TypeError: boom — this looks like a bug")


def test_min_constraints_pin_each_declared_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    """scripts/min_constraints.py reads the floors from pyproject.toml and pins the lowest
    release inside each range (the index is asked only which releases exist: faked here)."""
    spec = importlib.util.spec_from_file_location("min_constraints", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    offered = ["2.5.6", "2.6.0", "2.6.1", "2.2.1", "2.2.2", "3.8.4", "3.9.0", "1.4.1", "1.4.2"]
    monkeypatch.setattr(script, "releases", lambda name: [Version(v) for v in offered])
    floors = {
        req.name: str(script.lowest(req))
        for req in script.declared(ROOT / "pyproject.toml", ["dev"])
        if req.name in ("lightning", "pandas", "matplotlib", "scikit-learn")
    }
    assert floors == {
        "lightning": "2.6.0", "pandas": "2.2.2", "matplotlib": "3.9.0", "scikit-learn": "1.4.2"
    }
