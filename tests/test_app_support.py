"""Helpers of the app's tests (no tests here): a free port, a running app. Their model is conftest.py's."""

from __future__ import annotations

import contextlib
import socket


def free_port() -> int:
    """A TCP port on localhost that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(app, **kwargs):
    """The app's UI served on a free localhost port while the block runs; yields its URL."""
    from eva_helpers.app.ui import build_ui, serve

    demo = build_ui(app=app)
    try:
        url, _ = serve(demo=demo, block=False, port=free_port(), **kwargs)
        yield url
    finally:
        demo.close()
