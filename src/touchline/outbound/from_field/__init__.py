"""The From field: who may send from which address (SPEC §5), and each user's public account switch."""
