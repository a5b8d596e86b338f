# Bindings for the C lookup tables the data plane routes with (csrc/allowedips.c, replay.c,
# index_table.c), so that tests and benchmarks can drive them from Python. The data plane keeps
# its own instances inside struct wgf_dp and never sees these objects. The C tables lock for
# themselves; every call that may wait on a table's lock releases the GIL first.
import ipaddress

from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc


from wgfast.includes.tables cimport *

from libc.errno cimport EEXIST, ENOMEM


# ---- allowed IPs ----

def _address(address) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An ipaddress address from an address object, its text, or its 4 or 16 packed bytes."""
    if isinstance(address, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return address
    if isinstance(address, (bytes, bytearray, memoryview)):
        if len(address) not in (4, 16):
            raise ValueError(f"a packed address is 4 or 16 bytes, got {len(address)}")
        return ipaddress.ip_address(bytes(address))
    if isinstance(address, str):
        return ipaddress.ip_address(address)
    raise TypeError(f"not an IP address: {address!r}")


cdef tuple _packed(address):
    """(family, packed bytes) of an address; raw 4- or 16-byte strings skip ipaddress."""
    if isinstance(address, bytes):
        if len(<bytes>address) == 4:
            return WGF_IP4, address
        if len(<bytes>address) == 16:
            return WGF_IP6, address
    addr = _address(address)
    return addr.version, addr.packed


def _prefix(prefix) -> tuple[int, bytes, int]:
    """(family, packed address, cidr) from an ip_network, ip_interface, an address (a host
    prefix), "addr/cidr" text, or an (address, cidr) pair. Host bits are allowed: the table
    masks them, as `wg` does."""
    if isinstance(prefix, tuple):
        if len(prefix) != 2:
            raise ValueError(f"expected (address, cidr), got {prefix!r}")
        family, packed = _packed(prefix[0])
        cidr = int(prefix[1])
        if not 0 <= cidr <= (32 if family == WGF_IP4 else 128):
            raise ValueError(f"cidr {cidr} out of range for IPv{family}")
        return family, packed, cidr
    if isinstance(prefix, str):
        prefix = ipaddress.ip_network(prefix, strict=False) if "/" in prefix else _address(prefix)
    if isinstance(prefix, (ipaddress.IPv4Interface, ipaddress.IPv6Interface)):
        prefix = prefix.network
    if isinstance(prefix, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return prefix.version, prefix.network_address.packed, prefix.prefixlen
    addr = _address(prefix)
    return addr.version, addr.packed, addr.max_prefixlen


cdef class AllowedIPs:
    """Cryptokey routing: longest-prefix match from IPv4/IPv6 addresses to peer ids.

    Peer ids are the caller's positive 32-bit integers; lookups return 0 for "no peer".
    Re-inserting a prefix already present points it at the new peer, as WireGuard does.
    """

    cdef wgf_allowedips *table

    def __cinit__(self):
        self.table = wgf_allowedips_new()
        if self.table == NULL:
            raise MemoryError()

    def __dealloc__(self):
        wgf_allowedips_free(self.table)

    def insert(self, prefix, uint32_t peer) -> None:
        """Map `prefix` (see _prefix for the accepted forms) to `peer` (> 0)."""
        if peer == 0:
            raise ValueError("peer id 0 means 'no peer'")
        family, packed, cidr = _prefix(prefix)
        cdef const uint8_t *addr = packed
        cdef int fam = family, c = cidr, rc
        with nogil:
            rc = wgf_allowedips_insert(self.table, fam, addr, <uint8_t>c, peer)
        if rc == -ENOMEM:
            raise MemoryError()
        if rc != 0:
            raise ValueError(f"cannot insert {prefix!r} for peer {peer} (error {-rc})")

    def remove(self, prefix, uint32_t peer) -> bool:
        """Remove `prefix` if it belongs to `peer`; True if it did."""
        family, packed, cidr = _prefix(prefix)
        cdef const uint8_t *addr = packed
        cdef int fam = family, c = cidr, rc
        with nogil:
            rc = wgf_allowedips_remove(self.table, fam, addr, <uint8_t>c, peer)
        return rc == 0

    def remove_by_peer(self, uint32_t peer) -> int:
        """Remove every prefix of `peer`; returns how many there were."""
        cdef size_t n
        with nogil:
            n = wgf_allowedips_remove_by_peer(self.table, peer)
        return n

    def lookup(self, address) -> int:
        """The peer owning the longest prefix containing `address`, or 0."""
        family, packed = _packed(address)
        cdef const uint8_t *p = packed
        cdef int fam = family
        cdef uint32_t peer
        with nogil:
            peer = wgf_allowedips_lookup(self.table, fam, p)
        return peer

    def lookup_many(self, addresses) -> list[int]:
        """lookup() for each address, in one batch under one lock."""
        keep = [_packed(a) for a in addresses]
        cdef Py_ssize_t n = len(keep), i
        if n == 0:
            return []
        cdef uint8_t *families = <uint8_t *>malloc(n)
        cdef const uint8_t **addrs = <const uint8_t **>malloc(n * sizeof(uint8_t *))
        cdef uint32_t *peers = <uint32_t *>malloc(n * sizeof(uint32_t))
        try:
            if families == NULL or addrs == NULL or peers == NULL:
                raise MemoryError()
            for i in range(n):
                families[i] = (<tuple>keep[i])[0]
                addrs[i] = <const uint8_t *>(<bytes>(<tuple>keep[i])[1])
            with nogil:
                wgf_allowedips_lookup_batch(self.table, families, addrs, peers, n)
            return [peers[i] for i in range(n)]
        finally:
            free(families)
            free(addrs)
            free(peers)

    def lookup_packets(self, packets, bint source=False) -> list[int]:
        """Route IP packets (bytes) by destination, or by source when `source`: the C data
        plane's batch path. Malformed or non-IP packets map to 0."""
        keep = [bytes(p) for p in packets]
        cdef Py_ssize_t n = len(keep), i
        if n == 0:
            return []
        cdef const uint8_t **pkts = <const uint8_t **>malloc(n * sizeof(uint8_t *))
        cdef size_t *lens = <size_t *>malloc(n * sizeof(size_t))
        cdef uint32_t *peers = <uint32_t *>malloc(n * sizeof(uint32_t))
        cdef wgf_ip_field field = WGF_IP_SOURCE if source else WGF_IP_DESTINATION
        try:
            if pkts == NULL or lens == NULL or peers == NULL:
                raise MemoryError()
            for i in range(n):
                pkts[i] = <const uint8_t *>(<bytes>keep[i])
                lens[i] = len(<bytes>keep[i])
            with nogil:
                wgf_allowedips_lookup_packets(self.table, pkts, lens, n, field, peers)
            return [peers[i] for i in range(n)]
        finally:
            free(pkts)
            free(lens)
            free(peers)

    def prefixes_of(self, uint32_t peer) -> list:
        """The prefixes mapped to `peer`, as ipaddress networks (v4 first, then by address)."""
        cdef size_t want = 0, got = 0, i
        cdef wgf_prefix *out = NULL
        try:
            # A writer may add prefixes between sizing and filling: retry until they fit.
            while True:
                with nogil:
                    want = wgf_allowedips_count_of(self.table, peer)
                free(out)
                out = <wgf_prefix *>malloc((want + 1) * sizeof(wgf_prefix))
                if out == NULL:
                    raise MemoryError()
                with nogil:
                    got = wgf_allowedips_prefixes_of(self.table, peer, out, want + 1)
                if got <= want + 1:
                    break
            result = []
            for i in range(got):
                if out[i].family == WGF_IP4:
                    net = ipaddress.IPv4Network((bytes(out[i].addr[:4]), out[i].cidr))
                else:
                    net = ipaddress.IPv6Network((bytes(out[i].addr[:16]), out[i].cidr))
                result.append(net)
        finally:
            free(out)
        result.sort(key=lambda net: (net.version, net.network_address, net.prefixlen))
        return result

    def count_of(self, uint32_t peer) -> int:
        """How many prefixes `peer` has."""
        return wgf_allowedips_count_of(self.table, peer)

    @property
    def node_count(self) -> int:
        """Trie nodes, branch points included (memory accounting)."""
        return wgf_allowedips_node_count(self.table)

    def __len__(self) -> int:
        return wgf_allowedips_count(self.table)


# ---- replay window ----

cdef class ReplayWindow:
    """The transport-counter replay window (8128 counters, RFC 6479 style).

    check() says whether a counter would be accepted without recording it; update() accepts and
    records it. Single-threaded, like the C struct: one owner per keypair.
    """

    WINDOW_SIZE = WGF_REPLAY_WINDOW_SIZE
    REJECT_AFTER_MESSAGES = WGF_REJECT_AFTER_MESSAGES

    cdef wgf_replay window

    def __cinit__(self):
        wgf_replay_init(&self.window)

    def check(self, uint64_t counter) -> bool:
        return wgf_replay_check(&self.window, counter) == 0

    def update(self, uint64_t counter) -> bool:
        return wgf_replay_update(&self.window, counter) == 0


# ---- receiver index ----

cdef class IndexTable:
    """Receiver index (uint32) -> (peer id, keypair handle); peer ids are > 0."""

    cdef wgf_index_table *table

    def __cinit__(self):
        self.table = wgf_index_table_new()
        if self.table == NULL:
            raise MemoryError()

    def __dealloc__(self):
        wgf_index_table_free(self.table)

    def insert(self, uint32_t index, uint32_t peer, uint32_t keypair) -> None:
        """Add an index; KeyError if it is already present."""
        if peer == 0:
            raise ValueError("peer id 0 means 'no peer'")
        cdef int rc
        with nogil:
            rc = wgf_index_table_insert(self.table, index, peer, keypair)
        if rc == -EEXIST:
            raise KeyError(index)
        if rc == -ENOMEM:
            raise MemoryError()
        if rc != 0:
            raise ValueError(f"cannot insert index {index} (error {-rc})")

    def replace(self, uint32_t index, uint32_t peer, uint32_t keypair) -> None:
        """Re-point an existing index in one step; KeyError if absent."""
        if peer == 0:
            raise ValueError("peer id 0 means 'no peer'")
        cdef int rc
        with nogil:
            rc = wgf_index_table_replace(self.table, index, peer, keypair)
        if rc != 0:
            raise KeyError(index)

    def remove(self, uint32_t index) -> None:
        """Drop an index; KeyError if absent."""
        cdef int rc
        with nogil:
            rc = wgf_index_table_remove(self.table, index)
        if rc != 0:
            raise KeyError(index)

    def lookup(self, uint32_t index) -> tuple[int, int] | None:
        """(peer, keypair) for `index`, or None."""
        cdef wgf_index_entry e
        cdef int rc
        with nogil:
            rc = wgf_index_table_lookup(self.table, index, &e)
        return (e.peer, e.keypair) if rc == 0 else None

    def lookup_many(self, indices) -> list:
        """lookup() for each index, in one batch under one lock."""
        values = list(indices)
        cdef Py_ssize_t n = len(values), i
        if n == 0:
            return []
        cdef uint32_t *idx = <uint32_t *>malloc(n * sizeof(uint32_t))
        cdef wgf_index_entry *out = <wgf_index_entry *>malloc(n * sizeof(wgf_index_entry))
        try:
            if idx == NULL or out == NULL:
                raise MemoryError()
            for i in range(n):
                idx[i] = values[i]
            with nogil:
                wgf_index_table_lookup_batch(self.table, idx, out, n)
            return [(out[i].peer, out[i].keypair) if out[i].peer else None for i in range(n)]
        finally:
            free(idx)
            free(out)

    def __contains__(self, index) -> bool:
        return self.lookup(index) is not None

    def __len__(self) -> int:
        return wgf_index_table_count(self.table)
