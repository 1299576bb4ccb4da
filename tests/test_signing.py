"""memorystore._signing: session ids from secrets, HMAC-SHA256 cookie signatures with rotation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import re

import pytest

from memorystore._signing import CookieSigner, is_session_id, new_session_id


def test_session_ids_have_256_bits_in_43_urlsafe_characters() -> None:
    sid = new_session_id()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", sid)
    assert len(base64.urlsafe_b64decode(sid + "=")) == 32
    assert is_session_id(sid)


def test_session_ids_are_unique() -> None:
    ids = {new_session_id() for _ in range(100_000)}
    assert len(ids) == 100_000


def test_session_ids_do_not_come_from_random() -> None:
    random.seed(0)
    first = new_session_id()
    random.seed(0)
    assert new_session_id() != first


@pytest.mark.parametrize("value", ["", "short", "x" * 44, "a" * 42 + "+", "a" * 42 + "=", b"a" * 43, None, 43])
def test_is_session_id_rejects(value: object) -> None:
    assert not is_session_id(value)


def test_is_session_id_rejects_a_str_subclass() -> None:
    class Sid(str):
        pass

    assert not is_session_id(Sid(new_session_id()))


def test_sign_and_unsign() -> None:
    signer = CookieSigner("secret")
    sid = new_session_id()
    signed = signer.sign(sid)
    value, dot, tag = signed.partition(".")
    assert (value, dot) == (sid, ".")
    key = hmac.new(b"secret", b"memorystore.session", hashlib.sha256).digest()
    expected = base64.urlsafe_b64encode(hmac.new(key, sid.encode(), hashlib.sha256).digest()).rstrip(b"=")
    assert tag == expected.decode()
    assert signer.unsign(signed) == sid


def test_tampering_is_detected() -> None:
    signer = CookieSigner("secret")
    signed = signer.sign("abc")
    value, _, tag = signed.partition(".")
    assert signer.unsign("abd." + tag) is None
    assert signer.unsign(value + "." + tag[:10] + ("A" if tag[10] != "A" else "B") + tag[11:]) is None
    assert signer.unsign(value + "." + tag + "=") is None  # non-canonical form
    assert signer.unsign(value) is None
    assert signer.unsign("." + tag) is None


@pytest.mark.parametrize("garbage", ["", ".", "..", "é.ü", "\udcff.x", "x" * 10_000, None, b"a.b", 7])
def test_unsign_never_raises(garbage: object) -> None:
    assert CookieSigner("secret").unsign(garbage) is None


def test_rotation_first_signs_all_verify() -> None:
    old = CookieSigner("old")
    rotated = CookieSigner(["new", "old"])
    new = CookieSigner("new")
    signed_old = old.sign("v")
    assert rotated.unsign(signed_old) == "v"
    assert rotated.sign("v") == new.sign("v")
    assert new.unsign(signed_old) is None
    assert old.unsign(rotated.sign("v")) is None


def test_salt_and_secret_separate_signatures() -> None:
    assert CookieSigner("k", salt="a").unsign(CookieSigner("k", salt="b").sign("v")) is None
    assert CookieSigner(b"k").unsign(CookieSigner("k").sign("v")) == "v"  # str is utf-8 bytes
    assert CookieSigner("k2").unsign(CookieSigner("k").sign("v")) is None


@pytest.mark.parametrize(
    ("secret", "error"),
    [
        ("", ValueError),
        (b"", ValueError),
        ([], ValueError),
        (["ok", ""], ValueError),
        (None, TypeError),
        ([1], TypeError),
    ],
)
def test_bad_secrets(secret: object, error: type) -> None:
    with pytest.raises(error):
        CookieSigner(secret)  # type: ignore[arg-type]


def test_a_value_with_a_dot_cannot_be_signed() -> None:
    with pytest.raises(ValueError):
        CookieSigner("k").sign("a.b")
