"""The RDKit layer of molgen: parsing, properties, fingerprints, parallel map.

Every other molgen module goes through this package for chemistry, so that
validity, canonical forms and property definitions are the same everywhere.

* :mod:`molgen.chem.molecules` -- parsing with per-molecule failure reasons,
  canonical SMILES, standardisation;
* :mod:`molgen.chem.properties` -- QED, logP, SA score, penalized logP and
  simple descriptors, by name in :data:`PROPERTIES`;
* :mod:`molgen.chem.fingerprints` -- Morgan fingerprints and Tanimoto
  similarity;
* :mod:`molgen.chem.guard` -- size and shape limits checked before RDKit's
  recursive code (:class:`MoleculeLimits`, :func:`set_limits`);
* :mod:`molgen.chem._pool` -- :func:`pmap`, the process pool used for large
  inputs.

Example::

    >>> from molgen import chem
    >>> chem.canonical_smiles("C(C)O")
    'CCO'
    >>> chem.try_parse("C1CC")
    (None, 'parse')
"""

from molgen.chem._pool import (
    DEFAULT_THRESHOLD,
    pmap,
    pmap_lists,
    pool_context,
    process_pool,
    resolve_n_jobs,
    split,
)
from molgen.chem.fingerprints import (
    bulk_tanimoto,
    fingerprint_array,
    morgan_fingerprint,
    tanimoto,
    tanimoto_matrix,
)
from molgen.chem.guard import (
    LIMIT_REASONS,
    MoleculeLimits,
    check_smiles,
    get_limits,
    limits_applied,
    set_limits,
)
from molgen.chem.molecules import (
    FAILURE_REASONS,
    canonical_smiles,
    canonicalize_many,
    explain_failure,
    is_valid,
    parse_smiles,
    standardize,
    try_parse,
)
from molgen.chem.properties import (
    PROPERTIES,
    ZINC250K_PLOGP_STATS,
    canonical_with_properties,
    compute_properties,
    hba,
    hbd,
    logp,
    mol_weight,
    num_aromatic_rings,
    num_heavy_atoms,
    num_rings,
    penalized_logp,
    penalized_logp_normalized,
    property_values,
    qed,
    qed_properties,
    ring_size_penalty,
    rotatable_bonds,
    sa_score,
    tpsa,
)

__all__ = [
    "DEFAULT_THRESHOLD",
    "pmap",
    "pmap_lists",
    "split",
    "pool_context",
    "process_pool",
    "resolve_n_jobs",
    "FAILURE_REASONS",
    "LIMIT_REASONS",
    "MoleculeLimits",
    "check_smiles",
    "get_limits",
    "set_limits",
    "limits_applied",
    "parse_smiles",
    "try_parse",
    "explain_failure",
    "canonical_smiles",
    "is_valid",
    "standardize",
    "canonicalize_many",
    "qed",
    "qed_properties",
    "logp",
    "sa_score",
    "penalized_logp",
    "penalized_logp_normalized",
    "ring_size_penalty",
    "mol_weight",
    "tpsa",
    "hbd",
    "hba",
    "rotatable_bonds",
    "num_rings",
    "num_aromatic_rings",
    "num_heavy_atoms",
    "ZINC250K_PLOGP_STATS",
    "PROPERTIES",
    "compute_properties",
    "property_values",
    "canonical_with_properties",
    "morgan_fingerprint",
    "fingerprint_array",
    "tanimoto",
    "bulk_tanimoto",
    "tanimoto_matrix",
]
