"""Waiting for a run: quiet for scripts, live for a person at a terminal.

Off a terminal, waiting is one long-poll after another (the daemon answers the moment
the run ends) and nothing is printed. On a terminal, a status line shows the run's
state and the time waited; with ``--tail`` the model's log follows on stderr as it is
written. Ctrl-C stops the waiting, never the run: the run belongs to the daemon, so
the message says so and gives the exact command that would cancel it.
"""

from __future__ import annotations

import sys
import time

import typer

from orchestrator.cli.output import live, say, shown
from orchestrator.cli.status import StatusLine
from orchestrator.client import ClientError, OrchClient
from orchestrator.client.runs import LONG_POLL_SECONDS
from orchestrator.client.types import FINISHED, RunInfo

LIVE_STEP_SECONDS = 0.25
"""How often the status line and the log refresh; the long-poll still ends at the run's end."""


class Waiter:
    def __init__(
        self, api: OrchClient, app_id: str, run_id: str, tail: bool, home_flag: str = ""
    ) -> None:
        """``home_flag``: `` --home DIR`` when the user gave one, so that the commands
        printed on Ctrl-C work as pasted."""
        self.api, self.app_id, self.run_id = api, app_id, run_id
        self.tail, self.home_flag = tail, home_flag

    def wait(self) -> RunInfo:
        is_live = live(sys.stderr)
        try:
            if not is_live and not self.tail:
                return self._quietly()
            return self._live(StatusLine(sys.stderr) if is_live else None)
        except KeyboardInterrupt:
            self._interrupted()
            raise typer.Exit(130) from None
        except ClientError as exc:
            if exc.status is not None:
                raise
            # the daemon went away (stopped, killed): the run is its, and how it ended is
            # known only once it is back (a stop ends a running run, keeps a queued one)
            raise ClientError(
                f"{exc.message}; stopped waiting for run {self.run_id}: once the daemon is "
                f"back, orch app run metadata {self._where()} tells how it ended"
            ) from None

    def _quietly(self) -> RunInfo:
        while True:
            info = self.api.runs.metadata(self.app_id, self.run_id, wait=LONG_POLL_SECONDS)
            if info["metadata"]["status_v2"] in FINISHED:
                return info

    def _live(self, status: StatusLine | None) -> RunInfo:
        """The status line is drawn before the log's lines are printed above it, so the
        run's id is on the screen before its first log line, however fast that comes."""
        started = time.monotonic()
        since: str | None = None
        try:
            while True:
                info = self.api.runs.metadata(self.app_id, self.run_id, wait=LIVE_STEP_SECONDS)
                state = info["metadata"]["status_v2"]
                if status is not None and state not in FINISHED:
                    waited = time.monotonic() - started
                    status.show(
                        f"run {self.run_id} {state} · {waited:.1f} s  (Ctrl-C stops waiting)"
                    )
                if self.tail:
                    since = self._print_log(since, status, until_end=state in FINISHED)
                if state in FINISHED:
                    return info
        finally:
            if status is not None:
                status.clear()

    def _print_log(self, since: str | None, status: StatusLine | None, until_end: bool) -> str:
        """Print the log lines written since ``since``; at the end, every line left."""
        while True:
            page = self.api.runs.live_logs(self.app_id, self.run_id, since)
            lines = [shown(item["log"], sys.stderr) for item in page["items"]]
            if status is not None:
                status.above(lines)
            else:
                sys.stderr.write("".join(f"{line}\n" for line in lines))
                sys.stderr.flush()
            since = page["next_page_token"]
            if not until_end or not page["items"]:
                return since

    def _where(self) -> str:
        """The run's options, as the commands printed for it need them."""
        return f"-a {self.app_id} -r {self.run_id}{self.home_flag}"

    def _interrupted(self) -> None:
        where = self._where()
        say(
            f"\nstopped waiting; run {self.run_id} keeps running.\n"
            f"  follow it: orch app run logs {where} --tail\n"
            f"  cancel it: orch app run cancel {where}"
        )
