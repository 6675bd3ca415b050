"""Code every role (solver, whistleblower, arbiter) shares: start-up and job context.

`roles.startup`: settings from ASSAY_* variables and flags, logging, the connection to the
chain and the store, the stop flag.  `roles.jobcontext`: a job's verified spec, program
and dataset.  Nothing here knows one role from another: this package never imports
`arbiter`, `solver` or `frontend_api` (an import-linter contract).
"""
