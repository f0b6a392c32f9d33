"""``python -m soseleto.config``: print the workflow's JSON schema (YAML)."""

from soseleto.config import schema_yaml

print(schema_yaml(), end="")
