"""Tests of reading a file's rows with the pipeline's source and decoder."""

import numpy as np
import pytest

from spikewatch.config import Config
from spikewatch.evaluation.rows import read_rows

CSV = """timestamp,value,anomaly,note
2024-01-01T00:00:00,1.0,0,a
2024-01-01T00:01:00,2.0,0,b
2024-01-01T00:00:30,3.0,1,late
2024-01-01T00:02:00,oops,1,bad
2024-01-01T00:03:00,4.0,1,c
"""


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text(CSV)
    config = Config().with_overrides(
        {
            "source": {
                "kind": "csv",
                "path": str(path),
                "label_field": "anomaly",
                "ignore_fields": ["note"],
            }
        }
    )
    return read_rows(config, extra_fields=("note", "value"))


def test_rows_are_accepted_as_the_engine_accepts_them(table):
    assert len(table) == 5
    assert table.channels == ("value",)
    assert table.accepted.tolist() == [True, True, False, False, True]
    assert table.rejected == {"out_of_order": 1, "non_numeric_value": 1}


def test_labels_come_from_every_row(table):
    # The undecodable row keeps its raw label, so scoring sees every labeled row.
    assert table.labels.tolist() == [0, 0, 1, 1, 1]


def test_undecodable_row_has_no_key_or_values(table):
    assert table.keys == ["default", "default", "default", None, "default"]
    assert np.isnan(table.timestamps[3])
    assert np.isnan(table.values[3]).all()
    assert table.values[4].tolist() == [4.0]


def test_extra_fields_are_numbers_or_zero(table):
    assert table.extra["note"].tolist() == [0.0] * 5
    assert table.extra["value"][:3].tolist() == [1.0, 2.0, 3.0]


def test_row_index_maps_accepted_rows(table):
    index = table.row_index()
    assert index == {
        ("default", 1704067200.0): 0,
        ("default", 1704067260.0): 1,
        ("default", 1704067380.0): 4,
    }
