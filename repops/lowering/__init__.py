"""Lowering of `torch.export` programs to canonical repops graphs (bring your own model)."""
