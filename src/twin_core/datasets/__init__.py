"""Instruction and preference datasets from an author's own writing (``twin datasets``).

Source: the cleaned documents of the feature store. Extracts are cut on paragraph (prose) or
top-level-definition (code) boundaries; each becomes an instruction whose answer is the author's own
text. Versions live in the artifact store as ``datasets/<kind>/<author_slug>/vNNNN/`` (parquet per
split, metadata last) and are addressed as ``<kind>/<author_slug>/vNNNN``.
"""
