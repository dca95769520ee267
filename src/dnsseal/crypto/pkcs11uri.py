"""RFC 7512 PKCS#11 URIs: ``pkcs11:token=T;object=O;id=%01?module-path=/x.so&pin-source=F``.

Text in, a frozen value out, and back (``Pkcs11Uri.parse(u.to_text()) == u``).  No I/O here:
reading the PIN file and loading the module is :mod:`dnsseal.crypto.pkcs11`'s job.

The path part (``;``-separated) says which token and object; the query part (``&``-separated)
says how to get there (``module-path``, ``module-name``) and how to log in (``pin-source``,
``pin-value``).  Like libp11 and Knot, the query attributes are also accepted in the path
(``pkcs11:token=T;pin-value=1234``); they are written back in the query.  An attribute this
module does not know makes the URI unusable (RFC 7512 2.3), except vendor ``x-`` ones, which are
kept.  :meth:`Pkcs11Uri.redacted` is the form for messages and logs: the PIN is never in it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from urllib.parse import quote, unquote_to_bytes

from dnsseal.errors import InputError

SCHEME = "pkcs11:"

# Attribute name -> dataclass field, in the order RFC 7512 lists them (and we write them).
PATH_ATTRS: tuple[tuple[str, str], ...] = (
    ("token", "token"),
    ("manufacturer", "manufacturer"),
    ("serial", "serial"),
    ("model", "model"),
    ("library-manufacturer", "library_manufacturer"),
    ("library-description", "library_description"),
    ("library-version", "library_version"),
    ("slot-manufacturer", "slot_manufacturer"),
    ("slot-description", "slot_description"),
    ("slot-id", "slot_id"),
    ("object", "object"),
    ("type", "type"),
    ("id", "id"),
)
QUERY_ATTRS: tuple[tuple[str, str], ...] = (
    ("module-name", "module_name"),
    ("module-path", "module_path"),
    ("pin-source", "pin_source"),
    ("pin-value", "pin_value"),
)
_FIELD = dict(PATH_ATTRS + QUERY_ATTRS)
OBJECT_TYPES = ("public", "private", "cert", "secret-key", "data")
# RFC 3986 unreserved characters plus the ones RFC 7512 allows unescaped in values.
_SAFE_PATH = "-._~:[]@!$'()*+,=&"
_SAFE_QUERY = "-._~:[]@!$'()*+,=/?|"


class UriError(InputError):
    """A PKCS#11 URI that cannot be used; the message names the attribute."""


@dataclass(frozen=True, slots=True)
class Pkcs11Uri:
    """A parsed PKCS#11 URI.  ``id`` is raw bytes (CKA_ID); everything else is text."""

    token: str | None = None
    manufacturer: str | None = None
    serial: str | None = None
    model: str | None = None
    library_manufacturer: str | None = None
    library_description: str | None = None
    library_version: str | None = None
    slot_manufacturer: str | None = None
    slot_description: str | None = None
    slot_id: int | None = None
    object: str | None = None
    type: str | None = None
    id: bytes | None = None
    module_name: str | None = None
    module_path: str | None = None
    pin_source: str | None = None
    pin_value: str | None = None
    vendor: tuple[tuple[str, str], ...] = ()  # x-* attributes, (name, value), kept as given

    def __post_init__(self) -> None:
        if self.type is not None and self.type not in OBJECT_TYPES:
            raise UriError(f"PKCS#11 URI: type={self.type} (one of {', '.join(OBJECT_TYPES)})")
        if self.pin_source is not None and self.pin_value is not None:
            raise UriError("PKCS#11 URI: give pin-source or pin-value, not both")

    @classmethod
    def parse(cls, text: str) -> Pkcs11Uri:
        """Parse ``text``; raises :class:`UriError` saying what is wrong (never echoing a
        PIN)."""
        if text[: len(SCHEME)].lower() != SCHEME:
            raise UriError(f"not a PKCS#11 URI (must start with {SCHEME!r}): {_shorten(text)}")
        body = text[len(SCHEME) :]
        path, _, query = body.partition("?")
        values: dict[str, object] = {}
        vendor: list[tuple[str, str]] = []
        for part, sep in ((path, ";"), (query, "&")):
            for item in part.split(sep) if part else ():
                if not item:
                    continue
                name, eq, raw = item.partition("=")
                name = name.strip().lower()
                if not eq:
                    raise UriError(f"PKCS#11 URI: {name!r} has no value (expected name=value)")
                if name.startswith("x-"):
                    vendor.append((name, _text(name, raw)))
                    continue
                attr = _FIELD.get(name)
                if attr is None:
                    raise UriError(f"PKCS#11 URI: unknown attribute {name!r}")
                if attr in values:
                    raise UriError(f"PKCS#11 URI: {name} given twice")
                values[attr] = _value(name, raw)
        try:
            return cls(**values, vendor=tuple(vendor))  # type: ignore[arg-type]
        except TypeError as e:  # pragma: no cover - the table and the fields agree
            raise UriError(f"PKCS#11 URI: {e}") from None

    def to_text(self) -> str:
        """The URI text (with the PIN if it has one: do not log it, see :meth:`redacted`)."""
        path = [
            f"{name}={_quote(name, getattr(self, attr), _SAFE_PATH)}"
            for name, attr in PATH_ATTRS
            if getattr(self, attr) is not None
        ]
        query = [
            f"{name}={_quote(name, getattr(self, attr), _SAFE_QUERY)}"
            for name, attr in QUERY_ATTRS
            if getattr(self, attr) is not None
        ]
        query += [f"{n}={quote(v, safe=_SAFE_QUERY)}" for n, v in self.vendor]
        return SCHEME + ";".join(path) + ("?" + "&".join(query) if query else "")

    def redacted(self) -> str:
        """The URI for messages and logs: a PIN value shows as ``***``."""
        if self.pin_value is None:
            return self.to_text()
        return dataclasses.replace(self, pin_value="***").to_text()

    def without_pin(self) -> Pkcs11Uri:
        return dataclasses.replace(self, pin_value=None, pin_source=None)

    def replace(self, **changes: str | bytes | int | None) -> Pkcs11Uri:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @property
    def selects_object(self) -> bool:
        return self.object is not None or self.id is not None

    def __repr__(self) -> str:
        return f"Pkcs11Uri({self.redacted()!r})"

    __str__ = redacted


def _shorten(text: str) -> str:
    # Never echo a whole URI from a user: it may carry a PIN.
    return repr(text[:20] + ("..." if len(text) > 20 else ""))


def _text(name: str, raw: str) -> str:
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise UriError(f"PKCS#11 URI: {name} is not UTF-8 text") from None


def _value(name: str, raw: str) -> object:
    if name == "id":
        return unquote_to_bytes(raw)
    text = _text(name, raw)
    if name == "slot-id":
        if not text.isdigit():
            raise UriError(f"PKCS#11 URI: slot-id must be a number, not {text!r}")
        return int(text)
    if name == "library-version" and not all(p.isdigit() for p in text.split(".", 1)):
        raise UriError(f"PKCS#11 URI: library-version must be M or M.N, not {text!r}")
    return text


def _quote(name: str, value: object, safe: str) -> str:
    if name == "id":
        assert isinstance(value, bytes)
        return "".join(f"%{b:02X}" for b in value)
    return quote(str(value), safe=safe)


def parse(text: str) -> Pkcs11Uri:
    return Pkcs11Uri.parse(text)
