"""The retrieval and administration portal: the routes of the JSON API and the server-rendered
pages, and their templates; the rules they apply are in :mod:`siprec_recorder.services`."""

from siprec_recorder.services.settings import WebSettings

__all__ = ["WebSettings", "create_app"]


def __getattr__(name: str) -> object:
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(name)
