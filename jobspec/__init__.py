"""The job spec, shared by the market and the training engine: `schema` (the one validator,
pydantic models and cross-field rules) and `factory` (specs for tests, demo and benches).
Torch-free, imports nothing else from Assay (an import-linter contract keeps it a leaf)."""
