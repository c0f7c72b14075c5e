"""One router module per resource. A record's id in a path is `{<name>_id:record_id}` (`api.paths`)."""

from api import paths

paths.register()
