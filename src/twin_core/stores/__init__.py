"""Stores: one interface each, a real backend and an embedded default, selected by settings.

Nothing here connects at import time; call the ``open_*`` factories.
"""
