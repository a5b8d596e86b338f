"""The sans-I/O WireGuard protocol core: datagrams, a clock and data-plane events in; datagrams to
send and actions for the data plane out. Nothing here opens a socket, a file or a thread.

    messages     wire formats and the paper's constants (the kernel's messages.h)
    drop         why an incoming handshake datagram was rejected
    tai64n       handshake timestamps
    aead         the handshake's AEADs, from the compiled core
    noise        Noise_IKpsk2: key derivation and the four handshake steps
    cookie       mac1 and mac2 on what we send, cookie replies to our handshakes (checking
                 what arrives, cookies and the rate limit under load are the data plane's)
    index_space  receiver indices: the contract with the data plane, which owns them
    timers       one peer's timers as a state machine, fed by the data plane's reports
    outputs      what the core asks its caller to do (keypairs go down to the data plane)
    peer         one peer's handshake, timers and cookies
    device_state the device: every peer, the identity, handshakes in and data-plane events in

Imports point only down: to each other, to the shared leaves (`wgfast.keys`, `wgfast._native`),
never to the daemon, the command line, the API or the benchmarks.
"""
