"""repops: reproducible operators, tapes, models, data, hashing, checkpoints and traces.

The same job spec gives the same bits on any device, thread count and blocking
(DESIGN.md section 4).  Modules:

* `numerics` - the kernels: Ozaki matmul, fixed-tree sum, float64 exp/log/tanh;
* `ops` - the closed operator vocabulary `Op` (each member's docstring is its semantics);
* `tape` - graph builder, reverse-mode autodiff, the executor;
* `models` - the zoo (mlp, gpt) written as tape builders;
* `program` - program/tape construction from the spec `jobspec.schema` validated (plus
  the zoo's own second check), state, training, checkpoints;
* `data` / `rng` - deterministic datasets, batches and counter-based random numbers;
* `hashing` / `merkle` / `stio` - tensorHash, stateHash, Merkle tree, canonical files;
* `trace` - operator chain, operand bundles, single-op re-execution;
* `torch_reference` - plain-torch twins for benchmarks only (never hashed).

Importing `repops` itself loads only the errors (over the spec schema, `jobspec.schema`:
pydantic) and the version (no torch).  This package must never import another Assay
package (chain, market, ...) except the leaf `jobspec`, and must never let an operator
with unspecified rounding touch a value that is hashed.
"""

from __future__ import annotations

from repops.errors import (
    BundleInvalid,
    CheckpointInvalid,
    DatasetInvalid,
    FieldError,
    RepopsError,
    SpecInvalid,
    TapeError,
)
from repops.version import REPOPS_VERSION

__all__ = [
    "REPOPS_VERSION",
    "BundleInvalid",
    "CheckpointInvalid",
    "DatasetInvalid",
    "FieldError",
    "RepopsError",
    "SpecInvalid",
    "TapeError",
]
