"""Session ids and signed session-id cookies, standard library only.

* :func:`new_session_id` draws 256 bits from :mod:`secrets` (43 url-safe
  characters).  Ids never come from ``random``, ``uuid1`` or the clock.
* :class:`CookieSigner` appends an HMAC-SHA256 tag to a value and checks it
  in constant time (:func:`hmac.compare_digest`).  It takes one secret or a
  list of them for key rotation: the first one signs, every one verifies.

The cookie only ever carries the id: session data stays on the server.  The
signature makes a guessed or copied-from-elsewhere id worthless without the
secret, and lets an adapter refuse ids it never issued before it even looks
at the store.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable

__all__ = ["SESSION_ID_BYTES", "CookieSigner", "is_session_id", "new_session_id"]

#: Random bytes per session id: 256 bits, well above OWASP's 64-bit floor.
SESSION_ID_BYTES = 32

# token_urlsafe(32) is 43 characters of the url-safe base64 alphabet.
_SESSION_ID_RE = re.compile(r"[A-Za-z0-9_-]{43}")

# Longest signed cookie value we are willing to look at.  An id plus its tag
# is 43 + 1 + 43 characters; anything much longer is garbage or an attack.
_MAX_SIGNED_LENGTH = 256


def new_session_id() -> str:
    """Return a fresh session id: ``secrets.token_urlsafe(32)`` (256 bits)."""
    return secrets.token_urlsafe(SESSION_ID_BYTES)


def is_session_id(value: object) -> bool:
    """True when ``value`` has the shape of an id made by :func:`new_session_id`."""
    return type(value) is str and _SESSION_ID_RE.fullmatch(value) is not None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _as_bytes(secret: str | bytes, what: str) -> bytes:
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    elif not isinstance(secret, (bytes, bytearray)):
        raise TypeError(f"{what} must be str or bytes, not {type(secret).__name__}")
    if not secret:
        raise ValueError(f"{what} must not be empty")
    return bytes(secret)


class CookieSigner:
    """Sign values as ``value.tag`` with HMAC-SHA256; verify against several secrets.

    ``secret`` is one str/bytes secret or a non-empty sequence of them.  The
    first signs; all of them verify, so a new secret can be put in front of
    the old one and the old one removed once every cookie signed with it has
    expired.  ``salt`` separates the signatures of different uses of one
    secret (each secret is first turned into ``HMAC(secret, salt)``).
    """

    __slots__ = ("_keys", "salt")

    def __init__(
        self,
        secret: str | bytes | Iterable[str | bytes],
        *,
        salt: str | bytes = "memorystore.session",
    ) -> None:
        if isinstance(secret, (str, bytes, bytearray)):
            secrets_list = [secret]
        else:
            secrets_list = list(secret)
            if not secrets_list:
                raise ValueError("secret must not be an empty list")
        salt_bytes = _as_bytes(salt, "salt")
        self.salt = salt
        self._keys = tuple(hmac.new(_as_bytes(s, "secret"), salt_bytes, hashlib.sha256).digest() for s in secrets_list)

    def _tag(self, key: bytes, value: bytes) -> bytes:
        return hmac.new(key, value, hashlib.sha256).digest()

    def sign(self, value: str) -> str:
        """Return ``value + "." + tag``, signed with the first secret."""
        if "." in value:
            raise ValueError("a value to sign must not contain '.'")
        return value + "." + _b64(self._tag(self._keys[0], value.encode("utf-8")))

    def unsign(self, signed: object) -> str | None:
        """Return the value if ``signed`` carries a valid tag from any secret, else ``None``.

        Never raises for malformed input: whatever a client sends is either a
        value this signer produced or ``None``.
        """
        if type(signed) is not str or len(signed) > _MAX_SIGNED_LENGTH:
            return None
        value, dot, tag = signed.rpartition(".")
        if not dot or not value:
            return None
        try:
            value_bytes = value.encode("utf-8")
            tag_bytes = tag.encode("ascii")
        except UnicodeError:
            return None
        ok = False
        for key in self._keys:
            # Compare every key (no early exit) and compare text forms, so
            # neither timing nor a non-canonical base64 tag tells anything.
            expected = _b64(self._tag(key, value_bytes)).encode("ascii")
            ok |= hmac.compare_digest(expected, tag_bytes)
        return value if ok else None
