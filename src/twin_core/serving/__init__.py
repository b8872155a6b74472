"""Serving: the twin as a KServe model server (transformer = RAG, predictor = LLM)."""
