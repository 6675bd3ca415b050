"""Assay's bindings to the EVM: artifacts, typed contract clients, events, errors, devnet."""
