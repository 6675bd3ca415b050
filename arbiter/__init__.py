"""Assay's dispute players: the honest strategy, the actor that sends its moves, the
whistleblower, and the referee that re-executes a single operator."""
