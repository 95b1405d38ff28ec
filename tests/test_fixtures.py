"""Parity tests never skip silently: with JAXLIC_SHARED set, a missing fixture fails the test."""
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_missing_fixture_fails_where_jaxlic_shared_is_set(tmp_path):
    (tmp_path / "fixtures").mkdir()
    test = "tests/test_mlicpp.py::test_transforms_match_official[mlicpp_old]"
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test], cwd=ROOT,
                       capture_output=True, text=True, env={**os.environ, "JAXLIC_SHARED": str(tmp_path)}, timeout=300)
    assert p.returncode == 1 and "1 failed" in p.stdout, p.stdout[-2000:]
    assert f"parity fixture {tmp_path / 'fixtures' / 'mlicpp_old'} not found" in p.stdout
