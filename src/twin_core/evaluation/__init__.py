"""Evaluation of a model version against a baseline, and the gate (``twin evaluate``).

``run.evaluate`` answers the held-out test split of the model's dataset with both models and measures
perplexity, style similarity, ROUGE-L, judge scores and RAG (hit@k, MRR, groundedness); ``gate``
compares the two columns with configs/evaluation.yaml; ``report`` writes JSON + HTML to the artifact
store and logs them to Comet. The embedder and the retriever are handed in (``Tools``): evaluation
sits below the feature store in the layer table.
"""
