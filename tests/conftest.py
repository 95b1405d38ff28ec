import os
import pathlib

# XLA:CPU's LLVM backend without its optimisation passes (before any test starts a JAX backend; subprocesses
# inherit it). The suite is mostly compilation: measured on this 2-core machine, MLIC++'s tiny training run
# 141 -> 97 s and HPCM's simulated-platform decode 35 -> 27 s, while a run-time-bound Kodak round trip goes
# 17 -> 22 s. Numerics are the same program's (no fast-math either way); parity at the default level is what
# benchmarks/parity.py records. JAXLIC_TEST_XLA_OPT=default keeps XLA's default.
if os.environ.get("JAXLIC_TEST_XLA_OPT", "0") != "default" and "xla_backend_optimization_level" not in \
        os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()

import jax
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("JAXLIC_SHARED", ROOT.parent / "shared"))
FIXTURES = SHARED / "fixtures"
KODAK = SHARED / "datasets" / "kodak"


def coder_params():
    """Both backends; 'tfc' skips where tensorflow-compression-ops is absent, unless CI requires it."""
    from jaxlic.coding.coders import available_coders
    have = available_coders()
    params = []
    for name in ("constriction", "tfc"):
        marks = []
        if name not in have and not os.environ.get("JAXLIC_REQUIRE_TFC"):
            marks = [pytest.mark.skip(reason=f"coder {name!r} not installed (latest environment)")]
        params.append(pytest.param(name, marks=marks, id=name))
    return params


def _missing(what: str):
    """Where JAXLIC_SHARED is set (CI sets it), missing shared data is an error in the setup, not a reason to
    skip: a parity test that skips silently checks nothing. Without it, a checkout lacking ../shared skips."""
    if os.environ.get("JAXLIC_SHARED"):
        pytest.fail(f"{what} (JAXLIC_SHARED={os.environ['JAXLIC_SHARED']})", pytrace=False)
    pytest.skip(f"{what} (set JAXLIC_SHARED)")


def fixture_dir(name: str) -> pathlib.Path:
    d = FIXTURES / name
    if not (d / "outputs.npz").exists():
        _missing(f"parity fixture {d} not found")
    return d


def fixture_file(name: str, file: str) -> pathlib.Path:
    """A file of a fixture that only visible fixtures carry (``intermediates.npz``): skip, with the reason, where
    the fixture has none."""
    path = fixture_dir(name) / file
    if not path.exists():
        pytest.skip(f"{path} absent: fixture {name!r} has no {file} (hidden-style fixtures carry none)")
    return path


def kodak_images() -> list[pathlib.Path]:
    files = sorted(KODAK.glob("kodim*.png"))
    if not files:
        _missing(f"Kodak images not found in {KODAK}")
    return files


def nhwc(a: np.ndarray) -> np.ndarray:
    return a.transpose(0, 2, 3, 1) if a.ndim == 4 else a


def rel_err(a, ref) -> float:
    a, ref = np.asarray(a, np.float64), np.asarray(ref, np.float64)
    return float(np.abs(a - ref).max() / max(np.abs(ref).max(), 1e-30))


@pytest.fixture(autouse=True)
def _highest_precision():
    with jax.default_matmul_precision("highest"):
        yield


@pytest.fixture(scope="session", autouse=True)
def _compilation_cache(tmp_path_factory):
    """JAX's persistent compilation cache for the whole run (the one the ``jaxlic`` command uses), shared by the
    xdist workers and every subprocess: a program several tests compile (a fixture's codec steps, a model
    loaded again in a fresh process) is compiled once. Each run starts with an empty cache."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the workers' common directory
    os.environ.setdefault("JAXLIC_CACHE_DIR", str(base / "xla-cache"))
    if tuple(int(p) for p in jax.__version__.split(".")[:2]) >= (0, 6):
        # not in the reference environment's jax 0.5: training steps read back from the cache there gave NaN
        # validation losses and a segmentation fault (test_train, 2026-12-04); its subprocesses still share it
        from jaxlic.cli import enable_compilation_cache
        enable_compilation_cache()


def pytest_collection_modifyitems(items):
    """Tests marked ``slow`` (tens of seconds or more, most of it XLA compiling) run first: pytest-xdist hands
    tests out in collection order, and a slow test drawn last keeps one worker busy while the other idles."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
