"""PRDs: the seed PRD's requirements, the table fallback, byte-exact front-matter updates, one-line errors."""

from __future__ import annotations

import datetime as _dt
import difflib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import maestro
from maestro.core.errors import PlanError
from maestro.plan.prd import PRD_PRIORITIES, Prd, load_prd, parse_prd, update_prd, update_prd_text

PLANS = Path(__file__).parent / "data" / "plans"
SEED = PLANS / "prd-maestro-orchestrator-v1.md"
SHARED_SEED = Path("/work/shared/seeds/prd-maestro-orchestrator-v1.md")

# read by eye from the seed's "Functional Requirements" table (and its front matter: they agree)
SEED_PRIORITIES = [
    ("FR-1", "P0"),
    ("FR-2", "P1"),
    ("FR-3", "P1"),
    ("FR-4", "P1"),
    ("FR-5", "P0"),
    ("FR-6", "P1"),
    ("FR-7", "P2"),
    ("FR-8", "P1"),
    ("FR-9", "P0"),
    ("FR-10", "P2"),
    ("FR-11", "P2"),
    ("FR-12", "P1"),
    ("FR-13", "P2"),
    ("FR-14", "P1"),
    ("FR-15", "P3"),
]

REQS = "priorities:\n  requirements:\n    - id: FR-1\n      text: Add two numbers\n      priority: P0\n"
TABLE_BODY = (
    "# Product Requirements Document: Calculator\n"
    "\n"
    "## 4. Functional Requirements\n"
    "\n"
    "| ID | Requirement | Priority | Notes |\n"
    "|----|-------------|----------|-------|\n"
    "| FR-1 | Add two numbers | P0 | core |\n"
    "| FR-2 | Subtract | P2 | |\n"
)


def seed_text() -> str:
    with SEED.open(encoding="utf-8", newline="") as f:
        return f.read()


def strip_front_matter(text: str) -> str:
    assert text.startswith("---\n")
    return text[text.index("\n---\n", 3) + len("\n---\n") :]


def hunks(old: str, new: str) -> list[tuple[list[str], list[str]]]:
    """The lines that differ, as (old lines, new lines) per changed block; [] when the texts are equal."""
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    return [(a[i1:i2], b[j1:j2]) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"]


def plan_error(exc: pytest.ExceptionInfo[PlanError]) -> str:
    text = str(exc.value)
    assert "\n" not in text and "\r" not in text, text
    assert "Traceback" not in text
    return text


# -- the seed ---------------------------------------------------------------------------------------------------


def test_the_copy_of_the_seed_is_byte_identical_to_the_shared_seed() -> None:
    if not SHARED_SEED.exists():
        pytest.skip(f"{SHARED_SEED} is not here (a fresh clone)")
    assert SEED.read_bytes() == SHARED_SEED.read_bytes()


def test_the_expected_priorities_agree_with_the_seeds_table_and_front_matter() -> None:
    text = seed_text()
    table = re.findall(r"^\| (FR-\d+) \| [^|]+ \| (P\d) \| [^|]* \|$", text, re.M)
    front = re.findall(r"^ {4}- id: (FR-\d+)\n {6}text: .*\n {6}priority: (P\d)$", text, re.M)
    assert table == SEED_PRIORITIES
    assert front == SEED_PRIORITIES


def test_the_seed_has_fifteen_requirements_with_their_priorities() -> None:
    prd = load_prd(SEED)
    assert isinstance(prd, Prd)
    assert [(r.id, r.priority) for r in prd.requirements] == SEED_PRIORITIES
    assert len(prd.requirements) == 15
    assert prd.requirement_ids == frozenset(f"FR-{i}" for i in range(1, 16))
    assert prd.source == str(SEED)
    assert prd.text == seed_text()


def test_the_seeds_requirements_come_from_the_front_matter() -> None:
    prd = load_prd(SEED)
    fr1 = prd.requirement("FR-1")
    assert fr1.text == "Orchestrator executes end-to-end workflow autonomously (plan → implement → cleanup)"
    assert fr1.line == 45
    assert prd.requirement("FR-15").line == 129
    # the front matter's text, not the table's (which has backticks around the command)
    assert prd.requirement("FR-6").text == "New command /flow:autonomous triggers the orchestrator"
    assert [r.id for r in prd.requirements if r.blocking] == ["FR-1", "FR-2", "FR-3", "FR-4", "FR-5", "FR-6",
                                                               "FR-8", "FR-9", "FR-12", "FR-14"]  # fmt: skip
    with pytest.raises(KeyError):
        prd.requirement("FR-16")


def test_the_seeds_front_matter_values() -> None:
    prd = load_prd(SEED)
    assert prd.status == "implementing"
    assert prd.get("prd.feature_name") == "maestro-orchestrator"
    assert prd.get("git.branch") == "feat-orchestrate-flow"
    assert prd.get("git.updated_at_commit") == "b9dc8fd35ba862a6b43a7fb1f681f09eba00b4d7"
    assert prd.get("git.created_at_commit") == "b9dc8fd"
    assert prd.get("metadata.updated_at") == _dt.datetime(2026, 1, 7, 12, 37, 18, tzinfo=_dt.UTC)
    assert prd.get("metadata.nope", "dflt") == "dflt"
    assert prd.get("prd.status.deeper") is None
    assert prd.title == "Product Requirements Document: Maestro Orchestrator"
    assert prd.body.startswith("\n# Product Requirements Document: Maestro Orchestrator\n")
    assert PRD_PRIORITIES == ("P0", "P1", "P2", "P3", "P4")


# -- the table of the body --------------------------------------------------------------------------------------


def test_the_seed_without_front_matter_reads_the_same_requirements_from_its_table() -> None:
    body = strip_front_matter(seed_text())
    prd = parse_prd(body, "prd.md")
    assert [(r.id, r.priority) for r in prd.requirements] == SEED_PRIORITIES
    assert prd.front_matter == {}
    assert prd.status is None
    assert prd.title == "Product Requirements Document: Maestro Orchestrator"
    fr1 = prd.requirement("FR-1")
    assert fr1.line == 186 - 135  # the row's line in the file without its 135 front-matter lines
    assert fr1.notes == "Core feature"
    assert prd.requirement("FR-6").text == "New command `/flow:autonomous` triggers the orchestrator"
    assert prd.requirement("FR-15").line == 200 - 135


def test_front_matter_without_requirements_falls_back_to_the_table_with_file_line_numbers() -> None:
    text = seed_text()
    start = text.index("priorities:\n")
    end = text.index("\n---\n", start) + 1
    without = text[:start] + text[end:]
    removed = text.count("\n", start, end)
    prd = parse_prd(without)
    assert [(r.id, r.priority) for r in prd.requirements] == SEED_PRIORITIES
    assert prd.status == "implementing"
    assert prd.requirement("FR-1").line == 186 - removed
    assert without.splitlines()[prd.requirement("FR-1").line - 1].startswith("| FR-1 | Orchestrator executes")


def test_a_table_without_a_priority_column_defaults_to_p2() -> None:
    prd = parse_prd("## Functional Requirements\n\n| ID | Requirement |\n|---|---|\n| FR-1 | Add |\n")
    assert [(r.id, r.text, r.priority, r.line) for r in prd.requirements] == [("FR-1", "Add", "P2", 5)]


def test_a_table_in_another_section_is_not_read() -> None:
    text = "## Other\n\n| ID | Requirement |\n|---|---|\n| X-1 | no |\n\n" + TABLE_BODY
    prd = parse_prd(text)
    assert [(r.id, r.priority) for r in prd.requirements] == [("FR-1", "P0"), ("FR-2", "P2")]
    assert prd.requirement("FR-1").line == 13


# -- updating the seed: exactly the changed lines ---------------------------------------------------------------

STATUS = ("  status: implementing\n", "  status: done\n")
COMMIT = ("  updated_at_commit: b9dc8fd35ba862a6b43a7fb1f681f09eba00b4d7\n", "  updated_at_commit: 0a1b2c3d\n")
UPDATED = ("  updated_at: 2026-01-07T12:37:18Z\n", "  updated_at: 2026-02-01T09:30:00Z\n")
WHEN = _dt.datetime(2026, 2, 1, 9, 30, tzinfo=_dt.UTC)


@pytest.mark.parametrize(
    ("changes", "lines"),
    [
        ({"prd.status": "done"}, [STATUS]),
        ({"git.updated_at_commit": "0a1b2c3d"}, [COMMIT]),
        ({"metadata.updated_at": WHEN}, [UPDATED]),
        ({"prd.status": "done", "git.updated_at_commit": "0a1b2c3d", "metadata.updated_at": WHEN},
         [STATUS, COMMIT, UPDATED]),
    ],
    ids=["status", "commit", "updated_at", "all-three"],
)  # fmt: skip
def test_an_update_of_the_seed_changes_exactly_its_lines(
    changes: dict[str, object], lines: list[tuple[str, str]]
) -> None:
    old = seed_text()
    new = update_prd_text(old, changes)
    assert hunks(old, new) == [([before], [after]) for before, after in lines]
    assert len(new) - len(old) == sum(len(after) - len(before) for before, after in lines)
    assert strip_front_matter(new) == strip_front_matter(old)  # the markdown body is untouched
    prd = parse_prd(new)
    for dotted, value in changes.items():
        assert prd.get(dotted) == value
    assert [(r.id, r.priority) for r in prd.requirements] == SEED_PRIORITIES
    # everything else in the front matter reads as before
    before = parse_prd(old).front_matter
    after = dict(prd.front_matter)
    for dotted in changes:
        section, key = dotted.split(".")
        after[section] = {**after[section], key: before[section][key]}
    assert after == before


def test_setting_the_values_they_already_have_changes_nothing() -> None:
    old = seed_text()
    same = {
        "prd.status": "implementing",
        "git.updated_at_commit": "b9dc8fd35ba862a6b43a7fb1f681f09eba00b4d7",
        "metadata.updated_at": _dt.datetime(2026, 1, 7, 12, 37, 18, tzinfo=_dt.UTC),
    }
    assert update_prd_text(old, same) == old
    for dotted, value in same.items():
        assert update_prd_text(old, {dotted: value}) == old


def test_a_timestamp_is_written_in_utc_with_a_z_and_whole_seconds() -> None:
    old = seed_text()
    local = _dt.datetime(2026, 2, 1, 11, 30, 0, 999_999, tzinfo=_dt.timezone(_dt.timedelta(hours=2)))
    new = update_prd_text(old, {"metadata.updated_at": local})
    assert hunks(old, new) == [([UPDATED[0]], [UPDATED[1]])]
    assert parse_prd(new).get("metadata.updated_at") == WHEN


def test_a_naive_timestamp_or_a_value_of_another_type_is_refused() -> None:
    with pytest.raises(PlanError, match="timezone-aware"):
        update_prd_text(seed_text(), {"metadata.updated_at": _dt.datetime(2026, 2, 1)})
    for bad in (None, True, ["a"], {"a": 1}):
        with pytest.raises(PlanError, match="a front-matter value is a string, number or datetime"):
            update_prd_text(seed_text(), {"prd.status": bad})
    with pytest.raises(PlanError, match=r"bad front-matter path 'prd\.\.status'"):
        update_prd_text(seed_text(), {"prd..status": "x"})


@pytest.mark.parametrize("value", ["1234567", "007", "true", "null", "~", "1e3", "0x1F", "2026-01-01", "#x", "a: b"])
def test_a_value_that_needs_quoting_reads_back_as_the_same_string(value: str) -> None:
    old = seed_text()
    new = update_prd_text(old, {"git.updated_at_commit": value})
    [(before, after)] = hunks(old, new)
    assert before == [COMMIT[0]]
    assert after == [f"  updated_at_commit: '{value}'\n"]
    read = parse_prd(new).get("git.updated_at_commit")
    assert read == value
    assert type(read) is str


def test_an_all_digit_commit_stays_a_string_through_load_and_update(tmp_path: Path) -> None:
    path = tmp_path / "prd.md"
    path.write_bytes(SEED.read_bytes())
    prd = update_prd(path, updated_at_commit="1234567")
    assert prd.get("git.updated_at_commit") == "1234567"
    assert load_prd(path).get("git.updated_at_commit") == "1234567"
    assert "  updated_at_commit: '1234567'\n" in path.read_text(encoding="utf-8")


def test_quoted_values_keep_their_quote_style_and_their_comments() -> None:
    old = (
        "---\n"
        'prd:\n  status: "draft"  # set by /flow:plan\n'
        "git:\n  updated_at_commit: 'abc1234'\n"
        "metadata:\n  updated_at: 2026-01-07T12:37:18Z # utc\n" + REQS + "---\nbody\n"
    )
    new = update_prd_text(
        old,
        {"prd.status": 'say "hi"', "git.updated_at_commit": "it's", "metadata.updated_at": WHEN},
    )
    assert hunks(old, new) == [
        (['  status: "draft"  # set by /flow:plan\n'], ['  status: "say \\"hi\\""  # set by /flow:plan\n']),
        (["  updated_at_commit: 'abc1234'\n"], ["  updated_at_commit: 'it''s'\n"]),
        (["  updated_at: 2026-01-07T12:37:18Z # utc\n"], ["  updated_at: 2026-02-01T09:30:00Z # utc\n"]),
    ]
    prd = parse_prd(new)
    assert prd.status == 'say "hi"'
    assert prd.get("git.updated_at_commit") == "it's"
    assert prd.get("metadata.updated_at") == WHEN


def test_a_missing_key_is_inserted_at_the_end_of_its_section() -> None:
    old = seed_text()
    without_status = old.replace(STATUS[0], "", 1)
    assert update_prd_text(without_status, {"prd.status": "implementing"}) == old  # back where it was
    without_updated = old.replace(UPDATED[0], "", 1)
    new = update_prd_text(without_updated, {"metadata.updated_at": WHEN})
    assert hunks(without_updated, new) == [([], [UPDATED[1]])]
    lines = new.splitlines(keepends=True)
    assert lines[lines.index(UPDATED[1]) - 1] == "  filename: prd-maestro-orchestrator-v1.md\n"
    assert parse_prd(new).get("metadata.updated_at") == WHEN


def test_a_missing_section_is_added_at_the_end_of_the_front_matter() -> None:
    old = "---\nprd:\n  version: v1  # the format\n" + REQS + "---\n# Calc\n"
    new = update_prd_text(old, {"git.updated_at_commit": "1234567", "metadata.updated_at": WHEN})
    assert new == (
        "---\nprd:\n  version: v1  # the format\n" + REQS + "git:\n  updated_at_commit: '1234567'\n"
        "metadata:\n  updated_at: 2026-02-01T09:30:00Z\n---\n# Calc\n"
    )
    prd = parse_prd(new)
    assert prd.get("git.updated_at_commit") == "1234567"
    assert prd.get("metadata.updated_at") == WHEN
    assert prd.get("prd.version") == "v1"


def test_a_flow_style_section_is_updated_by_a_round_trip() -> None:
    old = "---\nprd: {version: v1, status: draft}\n" + REQS + "---\nbody\n"
    new = update_prd_text(old, {"prd.status": "done"})
    assert new == "---\nprd: {version: v1, status: done}\n" + REQS + "---\nbody\n"


def test_a_prd_without_front_matter_gains_one() -> None:
    new = update_prd_text(TABLE_BODY, {"prd.status": "done", "git.updated_at_commit": "007"})
    assert new == "---\nprd:\n  status: done\ngit:\n  updated_at_commit: '007'\n---\n" + TABLE_BODY
    prd = parse_prd(new)
    assert prd.status == "done"
    assert prd.get("git.updated_at_commit") == "007"
    assert [(r.id, r.priority) for r in prd.requirements] == [("FR-1", "P0"), ("FR-2", "P2")]
    assert prd.body == TABLE_BODY


def test_the_seed_without_front_matter_gains_one_and_keeps_its_body() -> None:
    body = strip_front_matter(seed_text())
    new = update_prd_text(body, {"metadata.updated_at": WHEN})
    assert new == "---\nmetadata:\n  updated_at: 2026-02-01T09:30:00Z\n---\n" + body
    assert parse_prd(new).get("metadata.updated_at") == WHEN


def test_a_prd_that_does_not_read_is_not_edited() -> None:
    with pytest.raises(PlanError, match="never closed"):
        update_prd_text("---\nprd:\n  status: draft\n", {"prd.status": "done"}, "prd.md")


# -- updating a file --------------------------------------------------------------------------------------------


def test_update_prd_replaces_the_file_atomically(tmp_path: Path) -> None:
    path = tmp_path / "prd-maestro-orchestrator-v1.md"
    path.write_bytes(SEED.read_bytes())
    inode = path.stat().st_ino
    prd = update_prd(path, status="done", updated_at_commit="0a1b2c3d", updated_at=WHEN)
    assert path.stat().st_ino != inode  # a new file renamed over the old one, not rewritten in place
    assert sorted(os.listdir(tmp_path)) == [path.name]  # no temporary file left behind
    assert prd.status == "done"
    assert prd.source == str(path)
    new = path.read_text(encoding="utf-8")
    assert hunks(seed_text(), new) == [([a], [b]) for a, b in (STATUS, COMMIT, UPDATED)]
    assert prd.text == new


def test_update_prd_refuses_other_keys_and_leaves_the_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "prd.md"
    path.write_bytes(SEED.read_bytes())
    with pytest.raises(PlanError) as exc:
        update_prd(path, branch="main")
    assert plan_error(exc) == f"{path}: cannot update 'branch': one of status, updated_at_commit, updated_at"
    assert path.read_bytes() == SEED.read_bytes()


def test_a_failed_write_leaves_the_file_and_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "prd.md"
    path.write_bytes(SEED.read_bytes())

    def broken(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(maestro.MaestroError, match="No space left on device"):
        update_prd(path, status="done")
    monkeypatch.undo()
    assert path.read_bytes() == SEED.read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["prd.md"]


def test_update_prd_of_a_missing_file_is_a_plan_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.md"
    with pytest.raises(PlanError) as exc:
        update_prd(path, status="done")
    assert plan_error(exc) == f"{path}: no such file"
    assert not path.exists()


# -- CRLF -------------------------------------------------------------------------------------------------------


def test_a_crlf_prd_reads_and_updates_line_for_line(tmp_path: Path) -> None:
    crlf = seed_text().replace("\n", "\r\n")
    path = tmp_path / "prd.md"
    path.write_bytes(crlf.encode("utf-8"))
    prd = load_prd(path)
    assert [(r.id, r.priority) for r in prd.requirements] == SEED_PRIORITIES
    assert prd.text == crlf
    assert prd.status == "implementing"
    update_prd(path, status="done", updated_at=WHEN)
    new = path.read_bytes().decode("utf-8")
    assert hunks(crlf, new) == [
        ([STATUS[0].replace("\n", "\r\n")], [STATUS[1].replace("\n", "\r\n")]),
        ([UPDATED[0].replace("\n", "\r\n")], [UPDATED[1].replace("\n", "\r\n")]),
    ]
    assert new.count("\r\n") == new.count("\n")
    assert load_prd(path).status == "done"


def test_a_crlf_table_only_prd_reads_its_table() -> None:
    prd = parse_prd(TABLE_BODY.replace("\n", "\r\n"))
    assert [(r.id, r.text, r.priority, r.line) for r in prd.requirements] == [
        ("FR-1", "Add two numbers", "P0", 7),
        ("FR-2", "Subtract", "P2", 8),
    ]


def test_a_key_inserted_into_a_crlf_front_matter_ends_with_crlf() -> None:
    old = ("---\nprd:\n  version: v1\n" + REQS + "---\nbody\n").replace("\n", "\r\n")
    new = update_prd_text(old, {"prd.status": "done"})
    assert new == ("---\nprd:\n  version: v1\n  status: done\n" + REQS + "---\nbody\n").replace("\n", "\r\n")


def test_front_matter_added_to_a_crlf_prd_uses_crlf() -> None:
    old = TABLE_BODY.replace("\n", "\r\n")
    new = update_prd_text(old, {"prd.status": "done"})
    assert new == "---\r\nprd:\r\n  status: done\r\n---\r\n" + old


# -- errors: one line, the file, the line -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "---\nprd:\n  status: draft\n" + REQS + "# no closing line\n",
            "prd.md:1: the front matter opened by '---' on line 1 is never closed by a '---' line",
            id="unclosed-front-matter",
        ),
        pytest.param(
            "---\nprd:\n  status: draft\n  bad: : :\n" + REQS + "---\n",
            "prd.md:4: front matter: YAML syntax: mapping values are not allowed here",
            id="yaml-syntax",
        ),
        pytest.param(
            "---\nprd:\n  status: [draft\n" + REQS + "---\n",
            "prd.md:4: front matter: YAML syntax: expected ',' or ']', but got ':'",
            id="yaml-unclosed-flow",
        ),
        pytest.param(
            "---\nprd: 1\nprd: 2\n" + REQS + "---\n",
            'prd.md:3: front matter: YAML syntax: found duplicate key "prd" with value "2" (original value: "1")',
            id="yaml-duplicate-key",
        ),
        pytest.param("---\n- a\n---\n", "prd.md:2: the front matter is a YAML mapping", id="front-matter-a-list"),
        pytest.param(
            "---\npriorities:\n  requirements:\n    - id: FR-1\n      priority: P0\n---\n",
            "prd.md:4: priorities.requirements.text: requirement #1: missing",
            id="requirement-without-text",
        ),
        pytest.param(
            "---\npriorities:\n  requirements:\n    - id: FR-1\n      text: ''\n---\n",
            "prd.md:5: priorities.requirements.text: requirement #1: expected a string, not ''",
            id="requirement-empty-text",
        ),
        pytest.param(
            "---\npriorities:\n  requirements:\n    - id: FR-1\n      text: Add\n      priority: P9\n---\n",
            "prd.md:6: priorities.requirements.priority: requirement FR-1: unknown priority 'P9' "
            "(one of P0, P1, P2, P3, P4)",
            id="bad-priority",
        ),
        pytest.param(
            "---\npriorities:\n  requirements:\n    - id: FR-1\n      text: Add\n      priority: 1\n---\n",
            "prd.md:6: priorities.requirements.priority: requirement #1: expected a string, not 1",
            id="priority-not-a-string",
        ),
        pytest.param(
            "---\npriorities:\n  requirements:\n    - id: FR-1\n      text: Add\n    - id: FR-1\n      text: B\n---\n",
            "prd.md:6: id: duplicate requirement id 'FR-1' (first at line 4)",
            id="duplicate-id",
        ),
        pytest.param(
            "---\npriorities:\n  requirements:\n    - id: 'FR 1'\n      text: Add\n---\n",
            "prd.md:4: priorities.requirements.id: requirement id 'FR 1' is not an id like FR-1",
            id="bad-id",
        ),
        pytest.param(
            "---\npriorities:\n  requirements: FR-1\n---\n",
            "prd.md:3: priorities.requirements: expected a list of requirements",
            id="requirements-not-a-list",
        ),
        pytest.param(
            "---\npriorities:\n  requirements:\n    - FR-1\n---\n",
            "prd.md:4: priorities.requirements: requirement #1 is a mapping with id, text and priority",
            id="requirement-not-a-mapping",
        ),
        pytest.param(
            "---\nprd:\n  status: draft\n---\n# Calc\n\nNo table.\n",
            "prd.md: no requirements: expected priorities.requirements in the front matter or a table under a "
            "'Functional Requirements' heading",
            id="no-requirements",
        ),
        pytest.param(
            "",
            "prd.md: no requirements: expected priorities.requirements in the front matter or a table under a "
            "'Functional Requirements' heading",
            id="empty",
        ),
        pytest.param(
            "## Functional Requirements\n\n| ID | Priority |\n|---|---|\n| FR-1 | P0 |\n",
            "prd.md:3: the Functional Requirements table needs ID and Requirement columns",
            id="table-without-requirement-column",
        ),
        pytest.param(
            "## Functional Requirements\n\n| ID | Requirement | Priority |\n|---|---|---|\n| FR-1 | Add |\n",
            "prd.md:5: the row has 2 cells, the header 3",
            id="row-with-missing-cells",
        ),
        pytest.param(
            "## Functional Requirements\n\n| ID | Requirement | Priority |\n|---|---|---|\n| FR-1 | Add | PX |\n",
            "prd.md:5: priority: requirement FR-1: unknown priority 'PX' (one of P0, P1, P2, P3, P4)",
            id="table-bad-priority",
        ),
        pytest.param(
            "## Functional Requirements\n\n| ID | Requirement |\n|---|---|\n| FR-1 | A |\n| FR-1 | B |\n",
            "prd.md:6: id: duplicate requirement id 'FR-1' (first at line 5)",
            id="table-duplicate-id",
        ),
        pytest.param(
            "## Functional Requirements\n\n| ID | Requirement |\n|---|---|\n| FR-1 |  |\n",
            "prd.md:5: text: empty text cell",
            id="table-empty-text",
        ),
    ],
)
def test_a_malformed_prd_is_one_line_naming_file_and_line(text: str, message: str) -> None:
    with pytest.raises(PlanError) as exc:
        parse_prd(text, "prd.md")
    assert plan_error(exc) == message
    assert exc.value.path == "prd.md"


def test_the_line_of_an_error_is_the_line_of_the_file(tmp_path: Path) -> None:
    # the seed with FR-7's priority broken: the error names FR-7's line of the seed file
    text = seed_text()
    lines = text.splitlines(keepends=True)
    at = lines.index("    - id: FR-7\n")
    assert lines[at + 2] == "      priority: P2\n"
    lines[at + 2] = "      priority: P7\n"
    path = tmp_path / "prd.md"
    path.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(PlanError) as exc:
        load_prd(path)
    assert plan_error(exc) == (
        f"{path}:{at + 3}: priorities.requirements.priority: requirement FR-7: unknown priority 'P7' "
        "(one of P0, P1, P2, P3, P4)"
    )
    assert exc.value.line == 83  # the priority's own line
    # and a YAML error in the seed's front matter: its own line
    lines = text.splitlines(keepends=True)
    lines[9] = "  updated_at_commit: [b9dc8fd\n"
    path.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(PlanError) as exc:
        load_prd(path)
    assert plan_error(exc).startswith(f"{path}:11: front matter: YAML syntax: ")
    assert exc.value.line == 11


def test_an_error_in_a_table_only_seed_names_the_table_row(tmp_path: Path) -> None:
    body = strip_front_matter(seed_text()).replace("| FR-9 | Orchestrator creates", "| FR-3 | Orchestrator creates")
    path = tmp_path / "prd.md"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(PlanError) as exc:
        load_prd(path)
    assert plan_error(exc) == f"{path}:{194 - 135}: id: duplicate requirement id 'FR-3' (first at line {188 - 135})"


def test_a_file_that_is_not_utf8_is_a_plan_error(tmp_path: Path) -> None:
    path = tmp_path / "prd.md"
    path.write_bytes(b"---\nprd:\n  status: \xff\n---\n")
    with pytest.raises(PlanError) as exc:
        load_prd(path)
    assert plan_error(exc) == f"{path}:3: not UTF-8 text (byte 19)"


def test_a_missing_file_is_a_plan_error(tmp_path: Path) -> None:
    with pytest.raises(PlanError) as exc:
        load_prd(tmp_path / "missing.md")
    assert plan_error(exc) == f"{tmp_path / 'missing.md'}: no such file"
    assert exc.value.line is None


def test_a_directory_is_a_plan_error(tmp_path: Path) -> None:
    with pytest.raises(PlanError) as exc:
        load_prd(tmp_path)
    assert plan_error(exc) == f"{tmp_path}: is a directory, not a PRD"


def test_a_plan_error_is_a_maestro_error_with_its_parts() -> None:
    with pytest.raises(maestro.MaestroError) as exc:
        parse_prd(
            "---\npriorities:\n  requirements:\n    - id: FR-1\n      text: Add\n      priority: P9\n---\n", "p.md"
        )
    err = exc.value
    assert isinstance(err, PlanError)
    assert (err.path, err.line, err.task, err.field) == ("p.md", 6, None, "priorities.requirements.priority")
    with pytest.raises(PlanError) as exc2:
        parse_prd("---\nprd: x\n---\n")
    assert str(exc2.value).startswith("<input>: no requirements")


# -- regressions found in review ----------------------------------------------------------------------------------

_ONE_REQ = "priorities:\n  requirements:\n    - {id: FR-1, text: x}\n"


def test_an_empty_value_is_filled_in_place() -> None:
    text = f"---\nprd:\n  status:   # to fill\n  version: v1\n{_ONE_REQ}---\nbody\n"
    new = update_prd_text(text, {"prd.status": "approved"})
    assert new == text.replace("  status:   # to fill", "  status: approved  # to fill")


def test_a_flow_style_section_is_edited_in_place() -> None:
    text = f"---\nprd: {{version: v1, feature_name: calc, status: draft}}  # or block style\n{_ONE_REQ}---\n"
    new = update_prd_text(text, {"prd.status": "approved"})
    assert new == text.replace("status: draft}", "status: approved}")


def test_anchors_and_aliases_are_kept() -> None:
    text = (
        "---\nprd: &p\n  status: draft\nother: *p\nmetadata:\n  created_at: &ts 2026-01-01T00:00:00Z\n"
        f"  updated_at: *ts   # same\n{_ONE_REQ}---\n"
    )
    new = update_prd_text(
        text, {"prd.status": "approved", "metadata.updated_at": _dt.datetime(2026, 2, 2, tzinfo=_dt.UTC)}
    )
    assert new == text.replace("status: draft", "status: approved").replace(
        "updated_at: *ts", "updated_at: 2026-02-02T00:00:00Z"
    )
    assert parse_prd(new).get("other.status") == "approved"  # the alias follows its anchor


def test_non_functional_requirements_are_not_the_functional_table() -> None:
    text = (
        "# Calc\n\n## Non-Functional Requirements\n\n| ID | Requirement | Priority |\n|---|---|---|\n"
        "| NFR-1 | Fast | P2 |\n\n## 4. Functional Requirements\n\n| ID | Requirement | Priority |\n|---|---|---|\n"
        "| FR-1 | Add | P0 |\n"
    )
    assert [(r.id, r.priority) for r in parse_prd(text).requirements] == [("FR-1", "P0")]


def test_an_empty_requirements_list_falls_back_to_the_table() -> None:
    table = "## Functional Requirements\n| ID | Requirement |\n|---|---|\n| FR-1 | a |\n"
    text = "---\npriorities:\n  requirements: []\n---\n" + table
    assert [r.id for r in parse_prd(text).requirements] == ["FR-1"]


def test_a_line_separator_inside_a_cell_is_text() -> None:
    text = "## Functional Requirements\n| ID | Requirement |\n|---|---|\n| FR-1 | a\u2028b |\n| FR-2 | c |\n"
    prd = parse_prd(text)
    assert [(r.id, r.text, r.line) for r in prd.requirements] == [("FR-1", "a\u2028b", 4), ("FR-2", "c", 5)]


def test_merge_keys_in_a_requirement_read() -> None:
    text = "---\nbase: &x {id: FR-1}\npriorities:\n  requirements:\n    - <<: *x\n      text: t\n---\n"
    assert [(r.id, r.text) for r in parse_prd(text, "m.md").requirements] == [("FR-1", "t")]


def test_deep_nesting_is_one_line() -> None:
    text = "---\nx: " + "[" * 50_000 + "]" * 50_000 + "\n---\n"
    with pytest.raises(PlanError, match=r"^p\.md: front matter: nested too deeply to read$"):
        parse_prd(text, "p.md")


def test_a_byte_order_mark_stays_first() -> None:
    text = "\ufeff# T\n## Functional Requirements\n| ID | Requirement |\n|---|---|\n| FR-1 | a |\n"
    assert parse_prd(text).title == "T"
    new = update_prd_text(text, {"prd.status": "draft"})
    assert new.startswith("\ufeff---\nprd:\n  status: draft\n---\n# T\n")
    assert new.count("\ufeff") == 1


def test_no_warning_reaches_stderr_without_logging_configured() -> None:
    code = (
        "from maestro.plan.prd import update_prd_text\n"
        "t = '---\\nprd: {a: [1, 2]}\\npriorities:\\n  requirements:\\n    - {id: FR-1, text: x}\\n---\\n'\n"
        "print(update_prd_text(t, {'prd.status': 'done'}).count('done'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (out.returncode, out.stdout, out.stderr) == (0, "1\n", "")


def test_a_duplicate_omap_key_in_the_front_matter_names_both_file_lines() -> None:
    text = "---\nprd:\n  x: !!omap\n    - a: 1\n    - a: 2\n---\n"
    with pytest.raises(PlanError) as exc:
        parse_prd(text, "p.md")
    assert str(exc.value) == "p.md:5: front matter: YAML syntax: found duplicate key 'a' in an !!omap (first at line 4)"
