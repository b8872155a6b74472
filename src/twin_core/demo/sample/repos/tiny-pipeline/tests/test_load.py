import json
from datetime import date

import pytest

from tiny_pipeline.extract import read_records
from tiny_pipeline.load import write_partition


def test_write_partition_is_idempotent(tmp_path):
    records = [{"id": "b", "text": "two"}, {"id": "a", "text": "one"}]
    first = write_partition(records, tmp_path, date(2024, 3, 14)).read_text()
    second = write_partition(records, tmp_path, date(2024, 3, 14)).read_text()
    assert first == second
    assert [json.loads(line)["id"] for line in first.splitlines()] == ["a", "b"]


def test_rerun_overwrites_instead_of_appending(tmp_path):
    day = date(2024, 3, 14)
    write_partition([{"id": "a", "text": "one"}], tmp_path, day)
    path = write_partition([{"id": "a", "text": "one"}], tmp_path, day)
    assert len(path.read_text().splitlines()) == 1
    assert sorted(p.name for p in path.parent.iterdir()) == ["part-000.jsonl"]


def test_read_records_reports_line_numbers(tmp_path):
    source = tmp_path / "raw.jsonl"
    source.write_text('{"text": "ok"}\n\nnot json\n', encoding="utf-8")
    records = read_records(source)
    assert next(records) == {"text": "ok"}
    with pytest.raises(ValueError, match=":3:"):
        next(records)
