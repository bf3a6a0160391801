"""The triage page: product owners' front end over the quirk catalogue (`shadow ui`).

`create_app(catalogue, rules_folder, token=…)` returns the aiohttp application; templates and the page's own
stylesheet and script ship in this package, so it works with no network.
"""

from shadow.web.app import create_app

__all__ = ["create_app"]
