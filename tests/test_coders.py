"""Range coders: exact round trips for any int32, code length close to the tables' ideal, speed in benchmarks/."""
import numpy as np
import pytest

from conftest import coder_params
from jaxlic.coding.coders import get_coder
from jaxlic.entropy import default_scale_table
from jaxlic.entropy.gaussian import gaussian_table
from jaxlic.entropy.tables import CodingTable, pmf_to_quantized_cdf

TABLE = gaussian_table(default_scale_table())


@pytest.mark.parametrize("coder", coder_params())
def test_gaussian_symbols_round_trip_near_ideal(coder):
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 64, 200_000).astype(np.int32)
    sym = np.round(rng.normal(0, default_scale_table()[idx])).astype(np.int32)
    c = get_coder(coder)
    data = c.encode(sym, idx, TABLE)
    np.testing.assert_array_equal(c.decode(data, idx, TABLE), sym)
    assert 8 * len(data) <= 1.001 * TABLE.ideal_bits(sym, idx) + 64


@pytest.mark.parametrize("coder", coder_params())
def test_every_int32_round_trips(coder):
    extremes = [0, 1, -1, 100000, -100000, 2 ** 31 - 1, -2 ** 31, 2 ** 30, -2 ** 30, 2 ** 28, -2 ** 28, 12345678]
    rng = np.random.default_rng(1)
    sym = np.concatenate([extremes, rng.integers(-2 ** 31, 2 ** 31, 500, dtype=np.int64),
                          rng.integers(-5, 5, 500)]).astype(np.int32)
    idx = rng.integers(0, 64, len(sym)).astype(np.int32)
    c = get_coder(coder)
    np.testing.assert_array_equal(c.decode(c.encode(sym, idx, TABLE), idx, TABLE), sym)


@pytest.mark.parametrize("coder", coder_params())
def test_small_tables_and_empty_input(coder):
    table = CodingTable.from_cdfs([pmf_to_quantized_cdf(np.array([0.7, 0.2, 0.1 - 1e-9, 1e-9]))], offset=[-1])
    c = get_coder(coder)
    sym = np.array([-1, 0, 1, 2, -7, 40, 1], np.int32)
    idx = np.zeros(len(sym), np.int32)
    np.testing.assert_array_equal(c.decode(c.encode(sym, idx, table), idx, table), sym)
    empty = np.zeros(0, np.int32)
    assert c.decode(c.encode(empty, empty, table), empty, table).size == 0


@pytest.mark.parametrize("coder", coder_params())
def test_bad_arguments_are_reported(coder):
    c = get_coder(coder)
    with pytest.raises(ValueError, match="table indexes"):
        c.encode(np.zeros(3, np.int32), np.array([0, 64, 1], np.int32), TABLE)
    with pytest.raises(ValueError, match="differ in size"):
        c.encode(np.zeros(3, np.int32), np.zeros(2, np.int32), TABLE)
    with pytest.raises(TypeError, match="integers"):
        c.encode(np.zeros(3, np.float32), np.zeros(3, np.int32), TABLE)


def test_unknown_coder():
    with pytest.raises(ValueError, match="unknown coder"):
        get_coder("zip")


def test_table_validation():
    with pytest.raises(ValueError, match="strictly increasing"):
        CodingTable.from_variables({"cdf": np.array([[0, 5, 5, 65536]]), "cdf_length": [4], "offset": [0]})
    with pytest.raises(ValueError, match="incomplete"):
        CodingTable.from_variables({"cdf": np.array([[0, 5, 65536]])})
