"""tiny_pipeline: extract, transform and load, idempotently."""

from tiny_pipeline.extract import read_records
from tiny_pipeline.load import write_partition
from tiny_pipeline.transform import clean_text, deduplicate, record_id

__all__ = ["clean_text", "deduplicate", "read_records", "record_id", "write_partition"]
__version__ = "0.1.0"
