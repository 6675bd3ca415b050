"""Assay's Solidity sources, their build (py-solc-x over solcjs) and the compiled artifacts."""
