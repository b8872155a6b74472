"""The data-aware schedule of the FTI pipelines: each stage emits an Asset the next one waits for."""

from airflow.sdk import Asset

RAW = Asset("twin://warehouse/raw")
CLEANED = Asset("twin://features/cleaned")
EMBEDDED = Asset("twin://features/embedded")
INSTRUCT = Asset("twin://datasets/instruct")
PREFERENCE = Asset("twin://datasets/preference")
CANDIDATE_MODEL = Asset("twin://models/candidate")
PRODUCTION_MODEL = Asset("twin://models/production")
# twin_monitoring: what users ask or how the twin answers drifted (rebuilds the datasets; training follows only
# when that makes a new dataset version, i.e. the corpus changed)
DRIFT = Asset("twin://monitoring/drift")

ASSETS = {a.uri: a for a in (RAW, CLEANED, EMBEDDED, INSTRUCT, PREFERENCE, CANDIDATE_MODEL, PRODUCTION_MODEL, DRIFT)}


def retrain_on_drift() -> bool:
    """The closed loop's switch: TWIN_RETRAIN_ON_DRIFT (default true) lets drift trigger a rebuild."""
    import os

    value = os.environ.get("TWIN_RETRAIN_ON_DRIFT", "true").strip().lower()
    if value not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise ValueError(f"TWIN_RETRAIN_ON_DRIFT must be true or false (got {value!r})")
    return value in ("1", "true", "yes", "on")


def or_drift(asset: Asset):  # noqa: ANN201 - an Asset or an AssetAny expression
    """``asset | DRIFT`` (new data or drift) while the closed loop is on; ``asset`` alone when it is off."""
    return (asset | DRIFT) if retrain_on_drift() else asset
