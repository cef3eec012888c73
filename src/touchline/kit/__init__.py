"""Domain-free helpers: addresses, domains, crypto, pagination. No I/O, no framework imports."""
