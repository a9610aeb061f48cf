"""Declarative definitions of lowprec's named formats (TOML, one table per format, each citing its
source). Installed as ``lowprec.format_data``; read by ``lowprec.formats``."""
