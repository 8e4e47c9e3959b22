"""The extension's HTTP side: the blueprint's views, problem+json, schemas, OpenAPI."""
