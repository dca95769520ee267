"""Key stores: where private keys live and how they sign.

A key store is a small protocol (:class:`~dnsseal.crypto.keystore.KeyStore`) plus a registry;
the software store (cryptography) is always there, PKCS#11 comes as an optional extra.
"""
