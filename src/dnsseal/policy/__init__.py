"""dnssec-policy: the model (:mod:`.model`), its TOML and named.conf forms, and checks;
and a zone's ``update-policy`` grant rules (:mod:`.grants`)."""
