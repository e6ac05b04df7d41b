"""Backends written the way docs/backends.md tells users to: used by the tests as ``--backend
tests.examples.MODULE:CLASS``."""
