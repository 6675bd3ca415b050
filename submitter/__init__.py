"""The submitter's client and the `assay job` / `assay dispute` CLI (keys stay local)."""
