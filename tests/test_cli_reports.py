"""The HTML report and the success metrics through the command line: `run` prints the page's path, `report --html`,
`sessions --html`, `stats`."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.runs import assert_completed, cli, make_plan, task, write


def test_run_writes_the_html_report_and_the_commands_write_and_list_it(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, tasks=[task("a")], script={"a": [{"actions": [write("a.txt", "a\n")]}]})
    out = plan.run()
    assert_completed(plan, out)
    page = plan.session_dir / "report.html"
    assert f"html report: {page}" in out.stdout.splitlines()
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "<svg" in text and "<script" not in text
    assert "[report.html](report.html)" in (plan.session_dir / "final-report.md").read_text(encoding="utf-8")

    other = tmp_path / "elsewhere.html"
    done = cli("report", "last", "--html", "-o", str(other), cwd=plan.repo)
    assert (done.returncode, done.stdout) == (0, f"{other}\n")
    assert other.read_text(encoding="utf-8") == text  # the same log, the same bytes

    index = cli("sessions", "--html", cwd=plan.repo)
    assert index.returncode == 0
    listed = Path(index.stdout.strip()).read_text(encoding="utf-8")
    assert plan.sid in listed and f"sessions/{plan.sid}/report.html" in listed

    wrong = cli("report", "last", "-o", str(other), cwd=plan.repo)
    assert (wrong.returncode, wrong.stderr) == (2, "maestro: error: -o/--output goes with --html\n")


def test_stats_counts_a_session_that_completed_on_its_own(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, tasks=[task("a")], script={"a": [{"actions": [write("a.txt", "a\n")]}]})
    assert_completed(plan, plan.run())
    out = cli("stats", "--json", cwd=plan.repo)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert (doc["sessions"], doc["ended"], doc["autonomous"], doc["autonomy_rate"]) == (1, 1, 1, 1.0)
    assert (doc["failures"], doc["per_task"]["attempts"]["total"]) == (0, 1)
    text = cli("stats", cwd=plan.repo)
    assert text.returncode == 0
    assert "autonomy rate: 100% (1 of 1 ended session completed with no human answer)" in text.stdout.splitlines()
