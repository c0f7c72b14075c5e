"""Cross-cutting infrastructure: settings, database, auth, errors, Temporal client."""
