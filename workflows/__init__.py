"""Temporal workflows: deterministic decisions over dataclass inputs of ids; no I/O, no PHI.

Nothing is imported here: Temporal's strict sandbox (the test suite's, `worker.STRICT_WORKFLOW_RUNNER`)
imports a workflow's module afresh for every workflow run, and with it the package's `__init__`, so a
package that imported every workflow would have each run import all of them. The worker takes its list
from `workflows.registry`.
"""
