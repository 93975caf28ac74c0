"""Follow the live model version: which version the worker scores with, and its vocabulary.

Which version is live is the kernel's one rule (:func:`streamrec.core.versions.live_version`),
applied to the versions Triton reports READY: the pinned one, else the newest.
:class:`VersionFollower` polls Triton's READY versions (and is woken early when a request names
an unknown version); when its target changes it loads that version's ``vocab.json`` and model
card and swaps (version, vocabulary, seq_len) in one assignment, so a batch that reads
:attr:`VersionFollower.live` once never decodes one version's ids with another's vocabulary.

Workers only follow versions: publishing them is the trainer's and the catalogue service's job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from streamrec.core import versions
from streamrec.core.model_card import read_model_card

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveVersion:
    """The version in use, its vocabulary and its input length (``seq_len`` from its model
    card): swapped together, read together."""

    model_name: str
    version: int
    vocab: versions.Vocabulary
    seq_len: int

    @classmethod
    def load(cls, model_repository: Path, model_name: str, version: int) -> LiveVersion:
        """Read version ``version``'s vocabulary and model card."""
        version_dir = model_repository / model_name / str(version)
        card = read_model_card(version_dir)
        return cls(model_name, version, versions.Vocabulary.load(version_dir), card.seq_len)

    @property
    def label(self) -> str:
        return f"{self.model_name}:{self.version}"


ReadyVersions = Callable[[], Awaitable[set[int]]]
SwitchListener = Callable[[LiveVersion, LiveVersion], None]  # (previous, new)


class VersionFollower:
    """Keeps :attr:`live` on the target version among those ``ready_versions()`` reports.

    ``ready_versions`` is any coroutine function returning the READY version numbers (Triton's
    repository index in production, a set in tests); it may raise when the server is down, and
    :meth:`run` then keeps the current version.
    """

    def __init__(
        self, model_repository: Path, model_name: str, ready_versions: ReadyVersions, *,
        interval_s: float = 0.5, on_switch: SwitchListener | None = None,
    ) -> None:
        self.model_repository = Path(model_repository)
        self.model_name = model_name
        self.ready_versions = ready_versions
        self.interval_s = interval_s
        self.on_switch = on_switch
        self._live: LiveVersion | None = None
        self._wakeup = asyncio.Event()
        self._pin_warned: int | None = None

    @property
    def live(self) -> LiveVersion | None:
        return self._live

    def target_version(self, ready: set[int]) -> int | None:
        """The live version among the READY ones (:func:`streamrec.core.versions.live_version`:
        the pinned one when it is READY, else the newest READY one)."""
        target = versions.live_version(self.model_repository, self.model_name, among=ready)
        pinned = versions.read_pin(self.model_repository, self.model_name)
        if pinned is not None and pinned != target and self._pin_warned != pinned:
            log.warning("pinned version %s is not READY in Triton (READY: %s)",
                        pinned, sorted(ready))
            self._pin_warned = pinned
        return target

    async def refresh(self) -> LiveVersion | None:
        """Switch to the target version if it changed; returns the live version."""
        target = self.target_version(await self.ready_versions())
        if target is None or (self._live is not None and self._live.version == target):
            return self._live
        live = await asyncio.to_thread(
            LiveVersion.load, self.model_repository, self.model_name, target)
        previous, self._live = self._live, live  # one step
        log.info("model version %s -> %s (%d items)",
                 previous.label if previous else None, live.label, len(live.vocab))
        if previous is not None and self.on_switch is not None:
            self.on_switch(previous, self._live)
        return self._live

    def request_check(self) -> None:
        """Check the versions now rather than at the next interval (e.g. Triton refused ours)."""
        self._wakeup.set()

    async def run(self) -> None:
        """Refresh every ``interval_s`` (or when asked) until cancelled."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self.interval_s)
            self._wakeup.clear()
            try:
                await self.refresh()
            except Exception as exc:  # Triton down: keep the current version
                log.debug("version watch: %s", exc)
