"""`wgfast bench`: tunnels measured in a throwaway two-namespace testbed, against other
implementations, plus the crypto and handshake benchmarks.

    tunnel     the tunnel benchmark (rounds, medians, ratios, the counter check)
    testbed    two namespaces, a veth pair and a daemon each, removed again
    traffic    the built-in traffic tool (`python -m wgfast.bench.traffic`) without iperf3
    crypto     batched AEAD against OpenSSL EVP and `cryptography`
    handshake  handshakes per second through the protocol core
    _cbench    the compiled helpers only benchmarks use: the OpenSSL EVP baseline, a timing
               loop in C, and bindings for the C lookup tables

It stands on top, beside the command line.
"""
