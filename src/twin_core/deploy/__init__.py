"""Rollouts: canary, promote, rollback and the watch window (``twin deploy``).

``rollout`` moves registry stages (what local serving follows) and, on Kubernetes, patches the
twin's InferenceService too (``kserve``); ``watch`` compares canary and production from the
inference log and decides to promote, roll back or keep watching.
"""
