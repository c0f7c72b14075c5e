"""MkDocs hooks (mkdocs.yml `hooks:`): the API reference, generated into the site at every build.

The build writes three files into the site, none of them committed: `reference/openapi.json` (the
OpenAPI document the app serves at `/openapi.json`, built from the code as `tests/test_openapi.py` builds
it), `reference/redoc.html` (a page that renders it with Redoc, the document inlined, so it works from a
plain file as well as served) and `assets/redoc.standalone.js` (the Redoc bundle the `fastapi-offline`
wheel ships, the one the API's own `/redoc` page loads). Nothing is fetched from a CDN.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `mkdocs` run as its own script: the project's modules from the checkout
    sys.path.insert(0, str(ROOT))

REDOC_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<!-- Images only from this site: the bundle's Redocly logo would be fetched from their CDN. -->
<meta http-equiv="Content-Security-Policy" content="img-src 'self' data:">
<title>PRM API reference</title>
<style>body {{ margin: 0; }}</style>
</head>
<body>
<div id="redoc"></div>
<script src="../assets/redoc.standalone.js"></script>
<script>
Redoc.init({spec}, {{expandResponses: "200,201"}}, document.getElementById("redoc"));
</script>
</body>
</html>
"""


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the generated API reference's files to the site's."""
    import fastapi_offline  # the Swagger UI and Redoc bundles the API serves (api/docs.py)

    from scripts.gen_docs import openapi_document

    spec = json.dumps(openapi_document(), indent=1, sort_keys=False)
    inline = json.dumps(json.loads(spec), separators=(",", ":")).replace("</", "<\\/")
    bundle = Path(fastapi_offline.__file__).parent / "static" / "redoc.standalone.js"
    files.append(File.generated(config, "reference/openapi.json", content=spec))
    files.append(File.generated(config, "reference/redoc.html", content=REDOC_PAGE.format(spec=inline)))
    files.append(File.generated(config, "assets/redoc.standalone.js", abs_src_path=str(bundle)))
    return files
