"""Airflow-side glue for LLM Twin: the step-operator factory, Assets, notifiers and defaults.

DAG files import from here only. Nothing here imports twin_core: a step is always the `twin`
command, run as a pod (kubernetes mode) or as a subprocess of the twin_core environment (local).
"""

from twin_ops.assets import ASSETS
from twin_ops.defaults import dag_kwargs, default_args
from twin_ops.factory import twin_step, twin_step_mapped

__all__ = ["ASSETS", "dag_kwargs", "default_args", "twin_step", "twin_step_mapped"]
