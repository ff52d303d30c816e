"""The Robot glue every library shares: the one owner and the one error path."""

from __future__ import annotations

import pytest
from robot.api.deco import keyword

from nvmechaos.errors import NvmeChaosError
from nvmechaos.process import spawn
from nvmechaos_robot import OWNER, KeywordContext, KeywordError, KeywordLibrary, Owner


class Thing:
    def __init__(self, name: str, log: list[str], running: bool = True, fails: bool = False) -> None:
        self.name, self.log, self.alive, self.fails = name, log, running, fails

    def stop(self) -> None:
        if self.fails:
            raise RuntimeError("socket busy")
        self.log.append(self.name)
        self.alive = False


def own(owner: Owner, thing: Thing, library: str = "Lib", scope: str = "test:1") -> None:
    owner.own(
        thing, name=thing.name, library=library, scope=scope, stop=thing.stop, running=lambda: thing.alive
    )


def test_release_stops_newest_first_and_names_what_still_ran() -> None:
    owner, log = Owner(), []
    drive, writer, done = Thing("drive", log), Thing("writer", log), Thing("old", log, running=False)
    for thing in (drive, done, writer):
        own(owner, thing)
    lines = owner.release("Lib", "test:1", "test")
    assert log == ["writer", "old", "drive"]
    assert lines == [
        "writer was still running at the end of the test; stopped it.",
        "drive was still running at the end of the test; stopped it.",
    ]
    assert owner.things("Lib") == []


def test_release_keeps_to_its_library_and_scope_and_goes_on_after_a_failure() -> None:
    owner, log = Owner(), []
    mine, other_scope, other_library = Thing("mine", log), Thing("suite-vm", log), Thing("fio", log)
    broken = Thing("broken", log, fails=True)
    own(owner, mine)
    own(owner, broken)
    own(owner, other_scope, scope="suite:1")
    own(owner, other_library, library="Other")
    lines = owner.release("Lib", "test:1", "test")
    assert log == ["mine"]
    assert lines == [
        "broken: stopping it at the end of the test failed: socket busy",
        "mine was still running at the end of the test; stopped it.",
    ]
    assert owner.things("Lib") == [other_scope]
    owner.forget(other_scope)
    assert owner.release("Lib", None, "run") == []
    assert owner.things("Other", Thing) == [other_library]


class Component:
    @keyword
    def engine_refuses(self) -> None:
        raise NvmeChaosError("drive d0: image '/proc/x' does not exist")

    @keyword
    def plain_bug(self) -> None:
        raise KeyError("x")


def test_engine_errors_become_one_line_failures_in_one_place() -> None:
    library = KeywordLibrary([Component()])
    with pytest.raises(KeywordError) as failure:
        library.run_keyword("engine_refuses", ())
    assert str(failure.value) == "drive d0: image '/proc/x' does not exist"
    assert failure.value.__cause__ is None and failure.value.__suppress_context__
    with pytest.raises(KeyError):  # anything else is a bug, shown as one
        library.run_keyword("plain_bug", ())


def test_release_also_stops_a_process_whose_start_was_interrupted_before_it_was_owned() -> None:
    class Lib(KeywordLibrary):
        SCOPE_PREFIX = "glue-"

    # Spawned in the library's scope but never handed to OWNER (its keyword timed out in between).
    orphan = spawn("orphan", ["sleep", "30"], scope="glue-test:t9")
    other = spawn("other", ["sleep", "30"], scope="else-test:t9")
    try:
        lines = Lib([Component()]).release("glue-test:t9", "test")
        assert lines == ["orphan was left by an interrupted start; stopped it."]
        assert not orphan.is_running() and other.is_running(), "only the library's own scope is swept"
    finally:
        other.stop()
        orphan.stop()


def test_a_context_owns_under_its_library_and_refuses_without_one() -> None:
    class Named(KeywordContext):
        owner_name = "GlueTestLibrary"

    stopped: list[str] = []
    context = Named()
    context.scope = "glue-test"
    thing = object()
    context.own(thing, "thing", lambda: stopped.append("thing"))
    assert OWNER.things("GlueTestLibrary") == [thing]
    assert OWNER.release("GlueTestLibrary", "glue-test", "test") == []  # not news: ends by design
    assert stopped == ["thing"]
    with pytest.raises(TypeError, match="KeywordContext sets no owner_name"):
        KeywordContext().own(object(), "x", lambda: None)
