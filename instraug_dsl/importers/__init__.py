"""Importers: instruction sets in other formats turned into checked `.iat` files."""
