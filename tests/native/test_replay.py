"""The replay window through the Python skin: WireGuard's cases and a hypothesis walk against an
exact reference model (the set of accepted counters and the greatest one)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st
from wgfast.bench._cbench import ReplayWindow

WINDOW = 8192 - 64
REJECT_AFTER_MESSAGES = 2**64 - 2**13 - 1


@dataclass
class ReferenceWindow:
    seen: set[int] = field(default_factory=set)
    greatest: int = -1

    def accepts(self, counter: int) -> bool:
        if counter >= REJECT_AFTER_MESSAGES or counter in self.seen:
            return False
        return counter + WINDOW >= self.greatest

    def update(self, counter: int) -> bool:
        if not self.accepts(counter):
            return False
        self.seen.add(counter)
        self.greatest = max(self.greatest, counter)
        return True


def test_constants():
    assert ReplayWindow.WINDOW_SIZE == WINDOW
    assert ReplayWindow.REJECT_AFTER_MESSAGES == REJECT_AFTER_MESSAGES


def test_in_order_duplicate_and_out_of_order():
    w = ReplayWindow()
    assert w.check(0) and w.update(0)
    assert not w.check(0) and not w.update(0)
    assert w.update(10) and w.update(5) and not w.update(5)
    assert w.check(6)
    assert w.check(6)  # check records nothing
    assert w.update(6) and not w.check(6)


def test_too_old_and_jump():
    w = ReplayWindow()
    assert w.update(100_000)
    assert w.check(100_000 - WINDOW)
    assert not w.check(100_000 - WINDOW - 1)
    assert w.update(100_000 + 3 * 8192)  # same ring slot three revolutions on: not a replay
    assert not w.update(100_000)
    assert w.update(100_000 + 3 * 8192 - 1)


def test_counter_limit():
    w = ReplayWindow()
    assert not w.update(REJECT_AFTER_MESSAGES)
    assert not w.update(2**64 - 1)
    assert w.update(REJECT_AFTER_MESSAGES - 1)
    assert not w.update(REJECT_AFTER_MESSAGES - 1)


@st.composite
def counter_walks(draw) -> list[int]:
    """Mostly near the front, some stragglers near the window's trailing edge, some jumps."""
    steps = draw(st.lists(st.tuples(st.sampled_from("nnnnetj"), st.integers(0, 20000)),
                          max_size=300))
    walk, front = [], 0
    for kind, r in steps:
        if kind == "n":
            c = max(0, front + 8 - r % 200)
        elif kind == "e":
            c = max(0, front - WINDOW - 3 + r % 7)
        elif kind == "j":
            front = c = front + r
        else:
            c = REJECT_AFTER_MESSAGES - 1 - r % 3 if r % 2 else REJECT_AFTER_MESSAGES + r % 3
        walk.append(c)
        front = max(front, c if c < REJECT_AFTER_MESSAGES - 10 else front)
    return walk


@settings(max_examples=200, deadline=None)
@given(counter_walks())
def test_matches_reference(walk):
    w, ref = ReplayWindow(), ReferenceWindow()
    for c in walk:
        expect = ref.accepts(c)
        assert w.check(c) == expect
        assert w.update(c) == ref.update(c) == expect
