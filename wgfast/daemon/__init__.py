"""wgfastd: the userspace WireGuard daemon (`python -m wgfast.daemon`, or the `wgfastd` command).

    main          command line, daemonizing, readiness, logging, signals
    interface     one interface: configuration, protocol core and data plane wired together
    config        the configuration as immutable values, changed by whole UAPI change-sets
    uapi_server   the UAPI socket (/var/run/wireguard/NAME.sock)
    tun, udp      the I/O edges: the TUN device and the UDP sockets
    link          the link's up/down state and MTU, followed through rtnetlink
    allowed_ips   the data plane's allowed-IPs table kept equal to the configuration
    offload       which offloads the data plane asks for (WGFAST_OFFLOAD)
    counters      the daemon's own counters, reported in get=1

It stands on the protocol core (`wgfast.protocol`) and the shared leaves; nothing below imports
it, and the API talks to it only over UAPI.
"""
