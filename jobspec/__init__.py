"""The job spec, shared by the market and the training engine: torch-free, imports nothing
else from Assay (an import-linter contract keeps it a leaf)."""
