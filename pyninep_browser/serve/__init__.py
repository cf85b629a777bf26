"""Serving one filesystem beyond the page: ``python -m pyninep_browser serve`` (docs/serve.md).

One asyncio process; every connection is its own 9P session (a
:class:`~pyninep_browser.server.Server`) over one shared
:class:`~pyninep_browser.fs.Filesystem`. The package:

- ``hub``: the sessions and what every transport shares (framing checks, the token, read-only,
  sessions that survive a reconnect, limits)
- ``streams``: TCP and Unix listeners, 9P's length-prefixed framing (stdlib only)
- ``websocket``: the WebSocket listener (v86's ``proxy_url``) and the optional static site; needs
  the ``websockets`` package (the ``[serve]`` extra), imported only when ``--ws`` is given
- ``cli``: the command line, the filesystem factory, signals and shutdown

It imports the server, the filesystem and the stores, never the page bridge or authoring.
"""

from .hub import FrameError, Hub, Limits, Session, SessionRefused

__all__ = ["Hub", "Limits", "Session", "FrameError", "SessionRefused"]
