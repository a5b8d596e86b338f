# Bindings for the C lookup tables (allowed IPs, replay window, receiver index). Filled in by the
# tables work.
