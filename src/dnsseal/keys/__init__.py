"""Key models and BIND's key file formats (``.key``, ``.private``, ``.state``)."""
