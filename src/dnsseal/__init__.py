"""dnsseal: a complete DNSSEC system (signing tools, key and signing policy, authoritative
server, validating resolver).  See ARCHITECTURE.md in the shared docs for the layers."""

__version__ = "0.1.0"
