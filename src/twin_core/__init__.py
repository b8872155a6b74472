"""LLM Twin core: domain, stores and pipeline steps. Importing this package does no I/O."""

__version__ = "0.1.0"
