"""The reference pages of the documentation site, generated from the code
(``scripts/gen_reference.py`` writes them into docs/reference/)."""
