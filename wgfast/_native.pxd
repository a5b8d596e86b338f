# What other Cython modules (the bench layer's extension) use of wgfast._native at the C level:
# the batch of packets sealed and opened in place, and the check of a fixed-size byte argument.
from libc.stdint cimport uint8_t

from wgfast.includes.aead cimport wgf_packet


cdef class PacketBatch:
    cdef wgf_packet *pkts
    cdef Py_buffer *views
    cdef Py_ssize_t n
    cdef Py_ssize_t acquired


cdef const uint8_t *fixed_bytes(const uint8_t[::1] view, Py_ssize_t size, str what) except NULL
