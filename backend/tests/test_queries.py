"""Hot-path queries load from backend/sql/queries: the comment header is dropped (a colon in a
comment must never become a bind parameter), every file holds a statement, and the attribution
code sends exactly the file's text."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from app.attribution import last_touch, service
from app.core import queries


def test_every_query_file_loads_with_only_its_own_binds() -> None:
    names = sorted(path.stem for path in queries.QUERIES.glob("*.sql"))
    assert names, "no query files found"
    for name in names:
        sql = queries.query(name)
        assert not sql.lstrip().startswith("--")
        assert set(text(sql).compile().params) <= {"tenant_id", "lookback_days", "start", "end"}, name


def test_the_attribution_code_sends_the_files() -> None:
    assert last_touch.LAST_TOUCH_ROWS == queries.query("last_touch_rows")
    assert last_touch.RECOMPUTE_SQL.text.endswith(queries.query("last_touch_rows"))
    assert service.RESULTS_SQL.text == queries.query("last_touch_channels")


def test_comments_are_dropped_and_an_empty_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "commented.sql").write_text("-- binds: :not_a_bind\n\nSELECT :kept\n")
    (tmp_path / "empty.sql").write_text("-- nothing: here\n")
    monkeypatch.setattr(queries, "QUERIES", tmp_path)
    queries.query.cache_clear()
    try:
        assert set(text(queries.query("commented")).compile().params) == {"kept"}
        # the control: the same text kept whole would bind the comment's word
        assert "not_a_bind" in text((tmp_path / "commented.sql").read_text()).compile().params
        with pytest.raises(ValueError, match="no statement"):
            queries.query("empty")
    finally:
        queries.query.cache_clear()
