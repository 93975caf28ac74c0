"""streamrec: a streaming, real-time recommender (Kafka + Faust + River + Triton + Redis).

Layers, lowest first (import-linter checks the direction, see README "Architecture"):
``streamrec.core`` (kernel) < ``inference`` < ``streams`` < ``training`` < ``streamrec.cli``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("streamrec")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
