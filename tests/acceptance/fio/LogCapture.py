"""What a keyword wrote into the log, for tests of keywords whose work is what they log. (Test
helper, not part of the product.)"""

from __future__ import annotations

from typing import Any

from robot.libraries.BuiltIn import BuiltIn


class LogCapture:
    """A library that is its own listener, so it sees every message while a keyword it runs runs."""

    ROBOT_LISTENER_API_VERSION = 3
    ROBOT_LIBRARY_SCOPE = "GLOBAL"

    def __init__(self) -> None:
        self.ROBOT_LIBRARY_LISTENER = self
        self._messages: list[str] | None = None

    def log_message(self, message: Any) -> None:
        if self._messages is not None:
            self._messages.append(str(message.message))

    def messages_logged_by(self, name: str, *args: Any) -> list[str]:
        """Run keyword ``name`` with ``args`` and return the messages it (and what it called) logged.

        Example:
        | ${messages} =    Messages Logged By    Log Fio Result    ${result}
        """
        self._messages = []
        try:
            BuiltIn().run_keyword(name, *args)
            return list(self._messages)
        finally:
            self._messages = None
