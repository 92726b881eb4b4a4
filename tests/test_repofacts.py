"""maestro.decide.repofacts: manifests, dependencies, tool configuration and layout of small repositories."""

from __future__ import annotations

from pathlib import Path

import pytest

from maestro.core.errors import PlanError
from maestro.decide.repofacts import MAX_DEPTH, normalise_name, scan
from tests.support.repos import GO, MONOREPO, NODE, PY_FLAT, PY_SRC, RUBY, RUST, make


def test_python_src_layout(tmp_path: Path) -> None:
    facts = scan(make(tmp_path / "py", PY_SRC))
    assert facts.ecosystems == ("python",)
    assert facts.primary == "python"
    assert facts.manifests == ("pyproject.toml",)
    names = {d.name: d.declared for d in facts.dependencies}
    assert names == {
        "httpx": ("pyproject.toml [project.dependencies]",),
        "ruamel-yaml": ("pyproject.toml [project.dependencies]",),  # PEP 503
        "pytest": ("pyproject.toml [project.optional-dependencies.dev]",),
        "ruff": ("pyproject.toml [project.optional-dependencies.dev]",),
        "mypy": ("pyproject.toml [project.optional-dependencies.dev]",),
        "sphinx": ("pyproject.toml [dependency-groups.docs]",),
    }
    assert facts.dependency("python", "RUAMEL.yaml") is not None
    assert facts.dependency("node", "httpx") is None
    assert facts.sections("tool.ruff") == ("pyproject.toml [tool.ruff]",)
    assert "pyproject.toml [tool.pytest.ini_options]" in facts.configs
    assert facts.settings["pyproject.toml [tool.mypy]"]["files"] == ["src/calc"]
    assert facts.packages == ("src/calc",)
    assert facts.names == {"pyproject.toml": "calc"}
    assert facts.test_files == ("tests/test_calc.py",)
    assert facts.markers == {"python:pytest": ("tests/test_calc.py",)}
    assert "src/calc/services" in facts.dirs
    assert facts.source_counts == {"python": 6}
    assert not facts.is_empty and not facts.truncated


def test_python_flat_layout_requirements_and_setup_cfg(tmp_path: Path) -> None:
    facts = scan(make(tmp_path / "flat", PY_FLAT))
    deps = {d.name: d.declared for d in facts.dependencies}
    assert deps == {
        "requests": ("requirements.txt",),
        "flask": ("requirements.txt",),
        "widget-kit": ("requirements.txt",),
        "pkg": ("requirements.txt",),
        "long-name": ("requirements.txt",),
        "flake8": ("requirements-dev.txt",),
        "click": ("setup.cfg [options] install_requires",),
        "attrs": ("setup.cfg [options] install_requires",),
        "pytest": ("setup.cfg [options.extras_require] test",),
    }
    assert facts.manifests == ("requirements-dev.txt", "requirements.txt", "setup.cfg")
    assert facts.sections("flake8") == ("setup.cfg [flake8]",)
    assert facts.settings["setup.cfg [flake8]"] == {"max-line-length": "100"}
    assert facts.packages == ("shop",)
    assert facts.markers == {"python:unittest": ("tests/test_shop.py",)}


def test_node_package_json_configs_and_scripts(tmp_path: Path) -> None:
    facts = scan(make(tmp_path / "node", NODE))
    assert facts.ecosystems == ("node",)
    deps = {d.name: d.declared for d in facts.dependencies}
    assert deps["axios"] == ("package.json [dependencies]",)
    assert deps["express"] == ("package.json [dependencies]",)  # npm names compare in lower case
    assert deps["vitest"] == ("package.json [devDependencies]",)
    assert [(s.name, s.command) for s in facts.scripts] == [("lint", "eslint src"), ("test", "vitest")]
    assert facts.config_files("vitest.config.*") == ("vitest.config.ts",)
    assert facts.config_files(".eslintrc*") == (".eslintrc.json",)
    assert {"tsconfig.json", "package-lock.json", "package.json [jest]"} <= set(facts.configs)
    assert facts.test_files == ("src/components/Button.test.tsx",)
    assert facts.members == ()


def test_node_monorepo_reads_members_not_fixtures(tmp_path: Path) -> None:
    facts = scan(make(tmp_path / "mono", MONOREPO))
    assert facts.members == ("packages/api", "packages/web")
    assert facts.dependency("node", "express").declared == ("packages/api/package.json [dependencies]",)  # type: ignore[union-attr]
    assert facts.config_files("vitest.config.*") == ("packages/web/vitest.config.ts",)
    assert "tests/fixtures/broken/package.json" not in facts.manifests
    assert facts.manifests == ("package.json", "packages/api/package.json", "packages/web/package.json")


def test_go_module(tmp_path: Path) -> None:
    facts = scan(make(tmp_path / "go", GO))
    assert facts.ecosystems == ("go",)
    assert [(d.name, d.declared) for d in facts.dependencies] == [
        ("github.com/go-chi/chi", ("go.mod [require]",)),
        ("golang.org/x/vuln", ("go.mod [require]",)),
    ]  # the indirect requirement is not the project's choice
    assert facts.names == {"go.mod": "example.com/calc"}
    assert facts.test_files == ("calc/calc_test.go",)


def test_rust_crate(tmp_path: Path) -> None:
    facts = scan(make(tmp_path / "rs", RUST))
    assert facts.ecosystems == ("rust",)
    deps = {d.name: d.declared for d in facts.dependencies}
    assert deps == {
        "serde-json": ("Cargo.toml [dependencies]",),
        "reqwest": ("Cargo.toml [dependencies]",),  # the package a renamed dependency stands for
        "rstest": ("Cargo.toml [dev-dependencies]",),
        "nix": ("Cargo.toml [target.cfg(unix).dependencies]",),
    }
    assert facts.markers["rust:test"] == ("src/lib.rs", "tests/integration.rs")
    assert facts.test_files == ("tests/integration.rs",)


def test_ruby_gemfile_groups(tmp_path: Path) -> None:
    facts = scan(make(tmp_path / "rb", RUBY))
    assert facts.ecosystems == ("ruby",)
    deps = {d.name: d.declared for d in facts.dependencies}
    assert deps == {
        "rails": ("Gemfile",),
        "faraday": ("Gemfile",),
        "rspec-rails": ("Gemfile [group :development, :test]",),
        "rubocop": ("Gemfile [group :development, :test]",),
        "jdbc-sqlite3": ("Gemfile",),
        "puma": ("Gemfile",),
    }
    assert ".rspec" in facts.configs
    assert facts.test_files == ("spec/models/user_spec.rb",)


def test_empty_repository(tmp_path: Path) -> None:
    root = tmp_path / "empty"
    (root / ".git").mkdir(parents=True)
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    facts = scan(root)
    assert facts.is_empty and facts.ecosystems == () and facts.primary is None
    assert facts.files == () and facts.dependencies == ()


def test_walk_prunes_and_caps(tmp_path: Path) -> None:
    deep = "/".join(f"d{i}" for i in range(MAX_DEPTH + 1))
    root = make(
        tmp_path / "walk",
        {
            "app.py": "",
            "node_modules/left-pad/package.json": "{ broken",
            ".venv/lib/site.py": "",
            "venv/lib/site.py": "",
            "build/lib/app.py": "",
            "src/__pycache__/x.pyc": "",
            ".flake8": "[flake8]\n",
            f"{deep}/too_deep.py": "",
        },
    )
    facts = scan(root)
    assert facts.files == (".flake8", "app.py")
    assert ".flake8" in facts.configs and ".flake8 [flake8]" in facts.configs
    assert facts.truncated  # the deepest folder was not walked
    assert "node_modules" not in facts.dirs and "src/__pycache__" not in facts.dirs
    assert scan(root) == facts  # deterministic


def test_normalise_name() -> None:
    assert normalise_name("python", "Ruamel__Yaml.Clib") == "ruamel-yaml-clib"
    assert normalise_name("rust", "Serde_JSON") == "serde-json"
    assert normalise_name("go", "github.com/Foo/Bar") == "github.com/Foo/Bar"
    assert normalise_name("node", "@Types/Node") == "@types/node"


@pytest.mark.parametrize(
    ("name", "text", "where", "field"),
    [
        ("pyproject.toml", '[project]\nname = "x"\ndependencies = [\n  "a",\n  = oops\n]\n', ":5:", None),
        ("pyproject.toml", '[project]\nname = "x"\ndependencies = "requests"\n', ":3:", "project.dependencies"),
        ("pyproject.toml", '[project]\ndependencies = ["ok", "==1.0"]\n', ":2:", "project.dependencies"),
        ("pyproject.toml", "[tool]\nruff = 1\n[tool.poetry]\ndependencies = 3\n", ":4:", "tool.poetry.dependencies"),
        ("package.json", '{\n  "name": "x",\n  "dependencies": {\n    "a": "1",\n  }\n}\n', ":5:", None),
        ("package.json", '{\n  "name": "x",\n  "devDependencies": ["vitest"]\n}\n', ":3:", "devDependencies"),
        ("package.json", '{\n  "scripts": {"test": 1}\n}\n', ":2:", "scripts"),
        ("package.json", "[1, 2]\n", ":1:", None),
        ("requirements.txt", "requests\n# fine\n==2.0\n", ":3:", "requirement"),
        ("setup.cfg", "install_requires = x\n", ":1:", None),
        ("setup.cfg", "[options]\ninstall_requires =\n    ok\n    !!bad\n", ":4:", "options.install_requires"),
        ("Cargo.toml", '[package]\nname = "x"\n[dependencies\nserde = "1"\n', ":3:", None),
        ("Cargo.toml", 'dependencies = 1\n[package]\nname = "x"\n', ":1:", "dependencies"),
        ("go.mod", "module x\n\nrequire (\n\tgithub.com/a/b\n)\n", ":4:", "require"),
        ("go.mod", "module x\n\nrequire (\n\tgithub.com/a/b v1.0.0\n", ":4:", "require"),
        ("Gemfile", 'source "x"\ngem rails\n', ":2:", "gem"),
        ("tox.ini", "[tox]\nenvlist = py311\nnot a key value line\n", ":3:", None),
    ],
)
def test_malformed_manifest_is_one_line_plan_error(
    tmp_path: Path, name: str, text: str, where: str, field: str | None
) -> None:
    root = make(tmp_path / "bad", {name: text})
    with pytest.raises(PlanError) as info:
        scan(root)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(root / name) + where), message
    assert info.value.path == str(root / name)
    assert info.value.field == field
    assert "Traceback" not in message


def test_malformed_member_manifest_is_reported(tmp_path: Path) -> None:
    root = make(tmp_path / "mono", {"package.json": '{"workspaces": ["apps/*"]}', "apps/a/package.json": "{"})
    with pytest.raises(PlanError, match=r"apps/a/package\.json:1: not valid JSON"):
        scan(root)


def test_missing_repository(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match=r"nowhere: no such repository folder"):
        scan(tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(PlanError, match=r"file: not a folder"):
        scan(tmp_path / "file")


def test_workspaces_of_other_ecosystems(tmp_path: Path) -> None:
    cargo = make(
        tmp_path / "cargo",
        {
            "Cargo.toml": '[workspace]\nmembers = ["crates/*", "tools/gen"]\n[workspace.dependencies]\nclap = "4"\n',
            "crates/core/Cargo.toml": '[package]\nname = "core"\n[dependencies]\nserde = "1"\n',
            "tools/gen/Cargo.toml": '[package]\nname = "gen"\n',
            "tools/other/Cargo.toml": "not toml at all [",  # not a member: never read
        },
    )
    facts = scan(cargo)
    assert facts.members == ("crates/core", "tools/gen")
    assert facts.dependency("rust", "serde").declared == ("crates/core/Cargo.toml [dependencies]",)  # type: ignore[union-attr]
    assert facts.dependency("rust", "clap").declared == ("Cargo.toml [workspace.dependencies]",)  # type: ignore[union-attr]
    pnpm = make(
        tmp_path / "pnpm",
        {
            "package.json": "{}",
            "pnpm-workspace.yaml": "packages:\n  - 'web'\n  - '!web/legacy'\n",
            "web/package.json": '{"dependencies": {"zod": "3"}}',
            "requirements/dev.txt": "pytest\n",
        },
    )
    facts = scan(pnpm)
    assert facts.members == ("web",)
    assert facts.dependency("node", "zod") is not None
    assert facts.dependency("python", "pytest").declared == ("requirements/dev.txt",)  # type: ignore[union-attr]
    gowork = make(
        tmp_path / "gowork",
        {"go.work": "go 1.22\n\nuse (\n\t./svc\n)\n", "svc/go.mod": "module svc\n\nrequire gorm.io/gorm v1.25.0\n"},
    )
    assert scan(gowork).dependency("go", "gorm.io/gorm").declared == ("svc/go.mod [require]",)  # type: ignore[union-attr]


def test_file_cap_stops_the_walk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import maestro.decide.repofacts as rf

    monkeypatch.setattr(rf, "MAX_FILES", 3)
    root = make(tmp_path / "many", {"a/x.py": "", "a/y.py": "", "b.py": "", "c.py": "", "d/z.py": ""})
    facts = scan(root)
    assert facts.files == ("a/x.py", "b.py", "c.py") and facts.truncated  # breadth first: the root, then a/
    assert facts.dirs == ("a", "d")  # d/ was found but not walked


# -- regressions: deep nesting, undecodable files, symlink loops, built-in markers ------------------
DEEP = 100_000


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("package.json", '{"a": ' + "[" * DEEP + "]" * DEEP + "}", "not valid JSON: nested too deeply"),
        ("pyproject.toml", "a = " + "[" * DEEP + "]" * DEEP + "\n", "not valid TOML: nested too deeply"),
        ("Cargo.toml", "a = " + "[" * DEEP + "]" * DEEP + "\n", "not valid TOML: nested too deeply"),
        ("pnpm-workspace.yaml", "packages: " + "[" * 3000 + "]" * 3000 + "\n", "not valid YAML: nested too deeply"),
    ],
)
def test_a_manifest_nested_too_deeply_is_a_plan_error(tmp_path: Path, name: str, text: str, problem: str) -> None:
    files = {name: text} if name != "pnpm-workspace.yaml" else {name: text, "package.json": "{}"}
    root = make(tmp_path / "deep", files)
    with pytest.raises(PlanError) as info:
        scan(root)
    assert str(info.value) == f"{root / name}: {problem} to read"


def test_a_binary_manifest_names_the_byte(tmp_path: Path) -> None:
    root = make(tmp_path / "bin", {})
    (root / "requirements.txt").write_bytes(b"requests\nflask\n\xff\xfe\x00")
    with pytest.raises(PlanError) as info:
        scan(root)
    assert str(info.value) == f"{root / 'requirements.txt'}:3: not UTF-8 text (byte 15)"


def test_a_symlink_loop_is_not_a_repository(tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(PlanError, match=r"loop: a symlink loop, not a repository folder"):
        scan(loop)
    broken = tmp_path / "broken"
    broken.symlink_to(tmp_path / "nowhere")
    with pytest.raises(PlanError, match=r"broken: a broken symlink"):
        scan(broken)
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert scan(tmp_path / "link").files == ()  # a symlink to a folder is fine


def test_built_in_test_runners_leave_markers(tmp_path: Path) -> None:
    root = make(
        tmp_path / "mixed",
        {
            "calc/calc_test.go": "package calc\n",
            "web/sum.test.mjs": "import test from 'node:test';\n",
            "web/other.test.js": 'const { test } = require("node:test");\n',
            "web/plain.test.js": "test('x', () => {})\n",
            "test/test_calc.rb": "require 'minitest/autorun'\n",
            "spec/calc_spec.rb": "describe 'x' do\nend\n",
        },
    )
    markers = scan(root).markers
    assert markers["go:test"] == ("calc/calc_test.go",)
    assert markers["node:test"] == ("web/other.test.js", "web/sum.test.mjs")
    assert markers["ruby:minitest"] == ("test/test_calc.rb",)
