"""Local mode runs the twin_core environment's `twin` as a subprocess; its JSON line is the XCom."""

from __future__ import annotations

import pytest
from airflow.sdk import DAG
from twin_ops.local_operator import TwinLocalOperator, TwinStepFailed, parse_result


def _op(args: list[str]) -> TwinLocalOperator:
    with DAG("local_probe", schedule=None):
        return TwinLocalOperator(task_id="probe", arguments=args)


def test_result_line_becomes_the_return_value(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_HOME", str(tmp_path / "home"))
    result = _op(["warehouse", "stats"]).execute(context={})
    assert result["step"] == "warehouse.stats" and result["status"] == "ok"
    assert result["users"] == 0


def test_failed_step_raises_with_its_error(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_HOME", str(tmp_path / "home"))
    with pytest.raises(TwinStepFailed, match="malformed JSON|no such file"):
        _op(["warehouse", "import", str(tmp_path / "missing")]).execute(context={})


def test_parse_result_takes_the_last_json_line() -> None:
    assert parse_result('progress\n{"a": 1}\n\n') == {"a": 1}
    assert parse_result("no json") is None
    assert parse_result("[1, 2]") is None
