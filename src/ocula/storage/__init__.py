"""Run directories, their artifact layout, and the run index."""

from ocula.storage import lease
from ocula.storage.index import RunIndex
from ocula.storage.runs import RunDir, new_run_id, read_json, read_yaml, write_json, write_yaml

__all__ = ["RunDir", "RunIndex", "lease", "new_run_id", "read_json", "read_yaml", "write_json", "write_yaml"]
