"""Docs that cannot go stale: every measured table in README.md and docs/ is what benchmarks/report.py writes
from benchmarks/results/*.json, and every figure README.md shows has its JSON."""
import importlib.util
import json
import shutil

import pytest

from conftest import ROOT


def _report():
    spec = importlib.util.spec_from_file_location("report", ROOT / "benchmarks" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("page", _report().PAGES)
def test_generated_tables_are_current(page):
    report = _report()
    text = (ROOT / page).read_text()
    blocks = report._BLOCK.findall(text)
    assert blocks, f"{page} has no generated tables"
    for _, name, body, _ in blocks:
        assert body.strip(), f"{page}: block {name} is empty; run python benchmarks/report.py"
    assert report.render(text) == text, f"{page} differs from its JSON; run python benchmarks/report.py"


def test_a_changed_measurement_changes_the_page(tmp_path, monkeypatch):
    """The check can fail: the same page against a JSON with one number changed differs exactly there."""
    report = _report()
    shutil.copytree(report.RESULTS, tmp_path / "results")
    d = json.loads((tmp_path / "results" / "coders.json").read_text())
    d["rows"][0]["encode_msym_s"] = 99.04
    (tmp_path / "results" / "coders.json").write_text(json.dumps(d))
    monkeypatch.setattr(report, "RESULTS", tmp_path / "results")
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    new = report.render(text)
    assert new != text and "| constriction | 99.0 |" in new


def test_readme_is_short_and_every_table_is_generated():
    report = _report()
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    outside = report._BLOCK.sub("", text)
    tables = [line for line in outside.splitlines() if line.startswith("|---")]
    assert len(tables) == 1  # the API's table (calls, not measurements); every measured one is generated
    for image in ("benchmarks/results/rd_kodak.png",):
        assert image in text and (ROOT / image).exists()
