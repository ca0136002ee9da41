"""The provider client is built once per process and never crosses a fork.

Building an httpx client loads the CA bundle (about 30 ms of CPU here), so the boundary keeps one
per process. A prefork worker child must not use the socket pool it inherited from its parent.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.connection import Connection

from app.llm.providers import ChatProvider

PROVIDER = ChatProvider("mock", "http://127.0.0.1:9", "sk-never-printed")  # inherited by the fork, as in prefork


def _report_reuse(parent_client: object, answer: Connection) -> None:
    answer.send(PROVIDER._client() is parent_client)


def test_one_client_per_process_and_a_new_one_after_fork() -> None:
    first = PROVIDER._client()
    assert PROVIDER._client() is first  # reused, not rebuilt per call
    fork = multiprocessing.get_context("fork")
    receive, send = fork.Pipe(duplex=False)
    child = fork.Process(target=_report_reuse, args=(first, send))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert receive.recv() is False  # the child built its own


def test_the_api_key_is_not_in_the_repr() -> None:
    assert "sk-never-printed" not in repr(ChatProvider("mock", "http://127.0.0.1:9", "sk-never-printed"))
