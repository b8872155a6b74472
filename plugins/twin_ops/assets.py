"""The data-aware schedule of the FTI pipelines: each stage emits an Asset the next one waits for."""

from airflow.sdk import Asset

RAW = Asset("twin://warehouse/raw")
CLEANED = Asset("twin://features/cleaned")
EMBEDDED = Asset("twin://features/embedded")
INSTRUCT = Asset("twin://datasets/instruct")
PREFERENCE = Asset("twin://datasets/preference")
CANDIDATE_MODEL = Asset("twin://models/candidate")
PRODUCTION_MODEL = Asset("twin://models/production")

ASSETS = {a.uri: a for a in (RAW, CLEANED, EMBEDDED, INSTRUCT, PREFERENCE, CANDIDATE_MODEL, PRODUCTION_MODEL)}
