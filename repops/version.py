"""The semantics version of the operator set; a job is valid only for exactly this version.

Bump it whenever any operator's bits, the tape construction, the hashing or the data
pipeline could change.  Never import anything here.
"""

REPOPS_VERSION = "repops-2"
