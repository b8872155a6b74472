"""The `twin` command line: one group per pipeline step (see ``main``)."""
