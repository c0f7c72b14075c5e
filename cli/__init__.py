"""The `prm` command line: tenants, tokens, migrations, demo data and the local stack (`prm run`)."""
