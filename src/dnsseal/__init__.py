"""dnsseal: a complete DNSSEC system (signing tools, key and signing policy, authoritative
server, validating resolver).  See ARCHITECTURE.md in the shared docs for the layers."""

import warnings

__version__ = "0.1.0"

# cryptography 51 deprecates its DSA classes, and dnspython (2.9) names them at import time
# for its DSA algorithms (3 and 6), so every import of dns.dnssec printed four warnings
# that no user of ours can act on.  Only that warning, only from that module.
warnings.filterwarnings("ignore", message="DSA is deprecated", module=r"dns\.dnssecalgs\.dsa")
