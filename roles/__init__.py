"""Code every role (solver, whistleblower, arbiter) shares.

`roles.startup`: settings from ASSAY_* variables and flags, logging, the connection to the
chain and the store, the stop flag.  `roles.jobcontext`: a job's verified spec, program
and dataset.  `roles.realtrace`: the trace over a real repops run that a solver defends
and a whistleblower attacks from.  `roles.files`: atomic writes and a role's own secret.
Nothing here knows one role from another: this package never imports
`arbiter`, `solver` or `frontend_api` (an import-linter contract).
"""
