"""The receiver-index table through the Python skin, and a hypothesis workload against a dict."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wgfast.bench._cbench import IndexTable


def test_insert_lookup_remove():
    t = IndexTable()
    assert t.lookup(7) is None and 7 not in t
    t.insert(7, 1, 0)
    t.insert(0, 2, 5)
    t.insert(2**32 - 1, 3, 2**32 - 1)
    assert t.lookup(7) == (1, 0)
    assert t.lookup(0) == (2, 5)
    assert t.lookup(2**32 - 1) == (3, 2**32 - 1)
    assert len(t) == 3 and 0 in t
    with pytest.raises(KeyError):
        t.insert(7, 9, 9)
    assert t.lookup(7) == (1, 0)  # the refused duplicate changed nothing
    assert t.lookup_many([7, 8, 0]) == [(1, 0), None, (2, 5)]
    t.replace(7, 4, 1)  # e.g. a handshake's index handed to its new keypair
    assert t.lookup(7) == (4, 1)
    with pytest.raises(KeyError):
        t.replace(8, 4, 1)
    assert 8 not in t
    t.remove(7)
    with pytest.raises(KeyError):
        t.remove(7)
    assert t.lookup(7) is None and len(t) == 2


def test_bad_arguments():
    t = IndexTable()
    with pytest.raises(ValueError):
        t.insert(1, 0, 0)  # peer 0 means "no peer"
    with pytest.raises(OverflowError):
        t.insert(2**32, 1, 0)
    with pytest.raises(OverflowError):
        t.lookup(-1)
    assert len(t) == 0


indices = st.one_of(st.integers(0, 300), st.integers(0, 2**32 - 1))
ops = st.lists(
    st.tuples(st.sampled_from(["insert", "insert", "remove", "replace", "lookup"]), indices,
              st.integers(1, 2**32 - 1), st.integers(0, 2**32 - 1)),
    max_size=400,
)


@settings(max_examples=100, deadline=None)
@given(ops)
def test_matches_dict(ops):
    t, ref = IndexTable(), {}
    for op, index, peer, keypair in ops:
        if op == "insert":
            if index in ref:
                with pytest.raises(KeyError):
                    t.insert(index, peer, keypair)
            else:
                t.insert(index, peer, keypair)
                ref[index] = (peer, keypair)
        elif op == "replace":
            if index in ref:
                t.replace(index, peer, keypair)
                ref[index] = (peer, keypair)
            else:
                with pytest.raises(KeyError):
                    t.replace(index, peer, keypair)
        elif op == "remove":
            if index in ref:
                t.remove(index)
                del ref[index]
            else:
                with pytest.raises(KeyError):
                    t.remove(index)
        else:
            assert t.lookup(index) == ref.get(index)
    assert len(t) == len(ref)
    keys = list(ref) + [(i + 1) % 2**32 for i in ref]
    assert t.lookup_many(keys) == [ref.get(k) for k in keys]
