"""The documentation site: its generated pages agree with the code, and it builds strictly and offline.

`docs/reference/settings.md` and `docs/reference/cli.md` are generated from `core.settings.Settings` and
the typer app (`scripts/gen_docs.py`); a setting or a command changed without `make docs` fails here. The
strict build fails on a broken link, a broken anchor or a page missing from the nav.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from mkdocs.commands.build import build
from mkdocs.config import load_config

from cli.main import app as cli_app
from core.settings import Settings
from scripts import gen_docs
from tests.analytics.cdp import LOOPBACK_ONLY, chromium_or_skip, headless_chromium
from tests.test_docs_offline import LOADED_URLS, open_docs

ROOT = Path(__file__).resolve().parent.parent


def test_the_committed_reference_pages_are_what_the_code_generates() -> None:
    stale = [str(page.relative_to(ROOT)) for page in gen_docs.stale_pages()]
    assert not stale, f"{', '.join(stale)} disagree with the code: run {gen_docs.REGENERATE} and commit"


def test_every_setting_is_in_the_reference_with_its_variable_and_description() -> None:
    page = gen_docs.settings_page()
    for name, field in Settings.model_fields.items():
        assert (field.description or "").strip(), f"setting {name} has no description (a docstring)"
        variable = gen_docs._env_names(name, field, "PRM_")[0]
        row = next((line for line in page.splitlines() if line.startswith(f"| `{variable}`")), None)
        assert row is not None, f"{variable} is missing from the settings reference"
        assert gen_docs._cell(field.description)[:40] in row
    assert (
        "| `DATABASE_URL` | unset |" in page
        and "| `PRM_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_ENDPOINT`)" in page
    )
    assert "| `PRM_API_PORT` | `8000` |" in page and "| `PRM_RATE_LIMITS_ENABLED` | `true` |" in page


def test_every_command_is_in_the_cli_reference() -> None:
    import typer

    page = gen_docs.cli_page()
    commands = [" ".join(path) for path, _ in gen_docs._commands(typer.main.get_command(cli_app), ["prm"])]
    assert len(commands) > 20 and "prm integration rotate" in commands and "prm commands pending" in commands
    for command in commands[1:]:
        assert f"`{command}`" in page, f"{command} is missing from the CLI reference"
    assert "| `--tenant-id` | uuid | The tenant the token acts for. (required) |" in page


@pytest.fixture(scope="module")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built strictly, once for the module: any warning (a broken link or anchor, a page missing
    from the nav) aborts the build. In-process, so the OpenAPI document is built once for the build and the
    tests (it takes seconds)."""
    site = tmp_path_factory.mktemp("docs") / "site"
    build(load_config(str(ROOT / "mkdocs.yml"), site_dir=str(site), strict=True))
    return site


def test_the_site_builds_strictly_offline_with_the_api_reference(built_site: Path) -> None:
    site = built_site
    # The API reference: the app's own OpenAPI document, rendered by the Redoc bundle the API serves.
    spec = json.loads((site / "reference" / "openapi.json").read_text())
    assert spec == gen_docs.openapi_document()  # what the app serves at /openapi.json
    assert "/api/v1/prm/campaigns" in spec["paths"] and len(spec["paths"]) > 50
    redoc = (site / "reference" / "redoc.html").read_text()
    assert '<script src="../assets/redoc.standalone.js">' in redoc and '"openapi":' in redoc
    assert (site / "assets" / "redoc.standalone.js").stat().st_size > 100_000
    # Nothing a page loads comes from another host: no web fonts, no CDN script or stylesheet.
    pages = list(site.rglob("*.html"))
    assert len(pages) > 30
    remote = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=["'](?:https?:)?//""", re.I)
    loading_remote = [str(p.relative_to(site)) for p in pages if remote.search(p.read_text())]
    assert not loading_remote, f"pages that load from another host: {loading_remote}"


@pytest.mark.parametrize("page", ["index.md", "getting-started.md"])
def test_readme_and_home_name_both_commands(page: str) -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    assert "make run" in readme and "make test" in readme
    assert "make run" in (ROOT / "docs" / page).read_text()


def test_the_readmes_links_lead_to_files_that_exist() -> None:
    """The README is read on the forge too, outside the site's strict build: its relative links checked."""
    links = re.findall(r"\]\(((?!https?:)[^)#]+)", (ROOT / "README.md").read_text())
    assert len(links) > 20
    assert [link for link in links if not (ROOT / link).is_file()] == []


async def test_the_api_reference_renders_from_the_built_files_with_no_network(built_site: Path) -> None:
    """Redoc renders the operations from `site/` opened as plain files, in a browser that can resolve no
    host (so anything reaching for a CDN would fail), every file it loaded being the site's own."""
    chromium = chromium_or_skip()
    async with headless_chromium(chromium, LOOPBACK_ONLY) as page:
        await open_docs(page, (built_site / "reference" / "redoc.html").as_uri())
        await page.wait_for(
            "document.body.innerText.includes('Launch Campaign')"
            " && document.querySelectorAll('[data-section-id]').length > 50",
            within=60,
        )
        loaded = await page.evaluate(LOADED_URLS)
        refusals = await page.evaluate("window.blockedByPolicy")
    # The bundle's Redocly logo is the one remote URL, and the page's policy refuses it (`img-src`).
    blocked = [refusal["uri"] for refusal in refusals if refusal["directive"] == "img-src"]
    assert loaded and [url for url in loaded if not url.startswith("file://") and url not in blocked] == []
