"""Swagger UI for the service's OpenAPI document."""
