"""ETL config files: a path that is not a readable YAML file is a clear input error, never a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from twin_core.errors import InputError
from twin_core.etl.config import load_config


def test_a_folder_is_not_a_config_file(tmp_path):
    with pytest.raises(InputError) as err:
        load_config(tmp_path)
    assert str(err.value) == f"ETL config {tmp_path} is not a file (give the path of a YAML file)"


def test_an_unreadable_config_file_names_the_cause(tmp_path, monkeypatch):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("user_full_name: Ada Quillfeather\nlinks: []\n")
    cfg.chmod(0)
    if os.access(cfg, os.R_OK):  # root reads anything: fail the read as the OS does for anyone else

        def denied(self: Path, *args: object, **kwargs: object) -> str:
            raise PermissionError(13, "Permission denied", str(self))

        monkeypatch.setattr(Path, "read_text", denied)
    with pytest.raises(InputError) as err:
        load_config(cfg)
    assert str(err.value) == f"ETL config {cfg} cannot be read: Permission denied"
