"""Masking secrets in streams and text: whatever the pieces, no value gets through."""

from __future__ import annotations

import json
import shlex

from hypothesis import given
from hypothesis import strategies as st

from herder.masking import MASK, Masker, forms

VALUE = "s3cret-Value!"


def _fed(masker: Masker, pieces: list[bytes]) -> bytes:
    stream = masker.stream()
    return b"".join(stream.feed(p) for p in pieces) + stream.flush()


def test_a_value_split_across_reads_is_masked() -> None:
    masker = Masker(forms([VALUE]))
    out = _fed(masker, [b"pw=s3cr", b"et-Val", b"ue!\n"])
    assert out == b"pw=***\n"


def test_what_may_start_a_value_waits_for_more() -> None:
    stream = Masker(forms([VALUE])).stream()
    assert stream.feed(b"hello s3c") == b"hello "
    assert stream.holding
    assert stream.feed(b"ond line\n") == b"s3cond line\n"
    assert not stream.holding


def test_the_held_end_is_written_when_the_stream_ends() -> None:
    stream = Masker(forms([VALUE])).stream()
    assert stream.feed(b"ends with s3cret-") == b"ends with "
    assert stream.flush() == b"s3cret-"


def test_several_values_and_their_forms() -> None:
    quoted = "it's a-secret"
    masker = Masker(forms([VALUE, quoted, "line-one\nline-two-x"]))
    text = (f"{VALUE} {json.dumps(quoted)} {shlex.quote(quoted)} line-two-x"
            f" {json.dumps('line-one' + chr(10) + 'line-two-x')}")
    assert masker.text(text) == " ".join([MASK, f'"{MASK}"', MASK, MASK, f'"{MASK}"'])


def test_no_values_pass_everything_through() -> None:
    masker = Masker(())
    assert not masker and _fed(masker, [b"a", b"b"]) == b"ab"


@given(
    st.lists(st.sampled_from([b"s3cret-Value!", b"s3c", b"ret", b"x", b"\n", b"s", b"!s3"]),
             max_size=30),
    st.lists(st.integers(min_value=1, max_value=7), min_size=1, max_size=30),
)
def test_any_split_masks_like_the_whole(words: list[bytes], cuts: list[int]) -> None:
    masker = Masker(forms([VALUE]))
    data = b"".join(words)
    pieces, at, i = [], 0, 0
    while at < len(data):
        size = cuts[i % len(cuts)]
        pieces.append(data[at:at + size])
        at, i = at + size, i + 1
    out = _fed(masker, pieces)
    assert out == masker.bytes(data)
    assert VALUE.encode() not in out
