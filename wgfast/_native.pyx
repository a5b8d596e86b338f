# cython: language_level=3
"""wgfast._native: the thin Cython skin over the C core in csrc/.

One extension module; each concept's bindings live in their own .pxi file, included here.
"""

include "aead.pxi"
include "evp.pxi"
include "benchloop.pxi"
include "tables.pxi"
include "dataplane.pxi"
