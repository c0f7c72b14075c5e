"""Temporal workflows: deterministic decisions over dataclass inputs of ids; no I/O, no PHI.

Nothing is imported here: the workflow sandbox imports a workflow's module afresh for every workflow run,
and with it the package's `__init__`, so a package that imported every workflow would have each journey run
import all seven modules. The worker takes its list from `workflows.registry`.
"""
