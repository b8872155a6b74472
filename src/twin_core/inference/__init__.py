"""Inference: LLM backends, the shared prompt, and the RAG retrieval pipeline."""
