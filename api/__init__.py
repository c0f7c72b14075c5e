"""The HTTP facade: routers parse, authorize, call a domain service and shape the response."""
