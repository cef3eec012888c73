"""The pure stage of sending: merge fields, templates, From rules, recipient filters, sequence
conditions and the MIME message. Nothing here reads a database or the network; time and randomness
come in as arguments where they matter."""
