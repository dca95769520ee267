"""dnssec-policy: the model (:mod:`.model`), its TOML and named.conf forms, and checks."""
