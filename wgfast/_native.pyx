# cython: language_level=3
"""wgfast._native: the thin Cython skin over the C core in csrc/, as the daemon and the protocol
core use it: batched ChaCha20-Poly1305 (and the handshake's one-shot and XChaCha20 forms) and the
data plane. Each concept's bindings live in their own .pxi file, included here; the C
declarations are in wgfast/includes/*.pxd. What only benchmarks and tests need is in the bench
layer's own extension, wgfast.bench._cbench.
"""

include "aead.pxi"
include "cookie.pxi"
include "dataplane.pxi"
