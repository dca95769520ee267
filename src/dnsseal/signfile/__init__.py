"""Signing zone files: ``sign_file(request, now) -> Report``, the library behind
``dnsseal signzone``.

Around the pure signer (:mod:`dnsseal.signer`) this package keeps a file cache of its own
output, so that signing a file again costs little: the signature ledger written next to
each signed file (:mod:`~dnsseal.signfile.ledger`: which signatures this signer made, so
they are kept without a check) and the snapshot of the file's text
(:mod:`~dnsseal.signfile.filesnapshot`: one digest per owner's block), from which an edited
file is re-signed reading only what changed (:mod:`~dnsseal.signfile.resign`, with
:mod:`~dnsseal.signfile.blockmatch`, :mod:`~dnsseal.signfile.resignread`,
:mod:`~dnsseal.signfile.resignlane` and :mod:`~dnsseal.signfile.resignchain`).

Not pure: it reads and writes files (through :mod:`dnsseal.storage`) and starts helper
processes (:mod:`~dnsseal.signfile.helper`).
"""

from dnsseal.signfile.edits import Edits
from dnsseal.signfile.helper import watch_parent
from dnsseal.signfile.run import (
    Report,
    SignFileRequest,
    VerificationFailed,
    nsec3_choice,
    sign_file,
)

__all__ = [
    "Edits",
    "Report",
    "SignFileRequest",
    "VerificationFailed",
    "nsec3_choice",
    "sign_file",
    "watch_parent",
]
