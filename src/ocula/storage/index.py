"""The run index: one row per run, SQLite under the runs root by default, any SQLAlchemy URL."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ocula.storage import lease

_metadata = sa.MetaData()
runs_table = sa.Table(
    "runs",
    _metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("data", sa.Text),
    sa.Column("model", sa.String(128)),
    sa.Column("mode", sa.String(32)),
    sa.Column("augment", sa.String(64)),
    sa.Column("classes", sa.Integer),
    sa.Column("epochs", sa.Integer),
    sa.Column("val_accuracy", sa.Float),
    sa.Column("wall_seconds", sa.Float),
)
COLUMNS = [c.name for c in runs_table.columns]


class RunIndex:
    """Record and list runs. ``url`` is a SQLAlchemy URL or a runs root (SQLite inside it)."""

    def __init__(self, url_or_root: str | Path) -> None:
        text = str(url_or_root)
        if "://" not in text:
            root = Path(text)
            root.mkdir(parents=True, exist_ok=True)
            text = f"sqlite:///{(root / 'index.sqlite').resolve()}"
        self.url = text
        self.engine = sa.create_engine(text)
        _metadata.create_all(self.engine)

    def record(self, run_id: str, **values: Any) -> None:
        """Insert or update the row for ``run_id`` with the given columns."""
        values = {k: v for k, v in values.items() if k in COLUMNS}
        with self.engine.begin() as conn:
            exists = conn.execute(sa.select(runs_table.c.id).where(runs_table.c.id == run_id)).first()
            if exists:
                if values:
                    conn.execute(runs_table.update().where(runs_table.c.id == run_id).values(**values))
            else:
                values.setdefault("created", time.time())
                values.setdefault("status", "running")
                values.setdefault("path", "")
                conn.execute(runs_table.insert().values(id=run_id, **values))

    def list(self, limit: int = 50) -> list[dict[str, Any]]:
        query = sa.select(runs_table).order_by(runs_table.c.created.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [self._checked(dict(row._mapping)) for row in conn.execute(query)]

    def _checked(self, row: dict[str, Any]) -> dict[str, Any]:
        """A "running" row whose process is gone (killed, crashed) becomes "dead", in the index too."""
        if row["status"] == "running" and row["path"] and lease.is_dead(row["path"]):
            row["status"] = "dead"
            with self.engine.begin() as conn:
                conn.execute(runs_table.update().where((runs_table.c.id == row["id"]) &
                                                       (runs_table.c.status == "running")).values(status="dead"))
        return row

    def get(self, run_id: str) -> dict[str, Any] | None:
        """Exact id, or a unique prefix of one."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(runs_table).where(runs_table.c.id.like(f"{run_id}%"))).fetchall()
        exact = [r for r in rows if r.id == run_id]
        chosen = exact or rows
        return self._checked(dict(chosen[0]._mapping)) if len(chosen) == 1 else None
