"""Assay's market layer: job specs, artifact store, indexer."""
