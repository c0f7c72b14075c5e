"""The business, one package per domain: models, schemas, repository, service."""
