"""harness: backends, error figures and verdicts, the runner, the ``losscheck`` CLI, the pytest plugin.

Kept import-free: worker processes, the pytest plugin and ``python -m harness`` import this package
first, and each should pay only for the submodules it uses.
"""
