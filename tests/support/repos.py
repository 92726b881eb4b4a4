"""Sample repositories of each ecosystem (Python src and flat layouts, Node, a Node monorepo, Go, Rust, Ruby).

Each is a mapping path → text (dedented by :func:`make`, which writes one); the repofacts scan
and the shipped strategies are tested on them.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path


def make(root: Path, files: dict[str, str]) -> Path:
    """A repository at ``root`` holding ``files`` (path → text, dedented)."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


PY_SRC = {
    "pyproject.toml": """
        [project]
        name = "calc"
        dependencies = ["httpx>=0.27", "Ruamel_Yaml[jinja2] ; python_version >= '3.11'"]

        [project.optional-dependencies]
        dev = ["pytest>=8", "ruff", "mypy"]

        [dependency-groups]
        docs = ["Sphinx", {include-group = "dev"}]

        [tool.pytest.ini_options]
        testpaths = ["tests"]

        [tool.ruff]
        line-length = 100

        [tool.mypy]
        strict = true
        files = ["src/calc"]
    """,
    "src/calc/__init__.py": "",
    "src/calc/core.py": "def add(a, b):\n    return a + b\n",
    "src/calc/services/__init__.py": "",
    "src/calc/services/pricing.py": "",
    "tests/conftest.py": "",
    "tests/test_calc.py": "import pytest\n\ndef test_add():\n    assert True\n",
    "README.md": "# calc\n",
}


PY_FLAT = {
    "requirements.txt": """
        # runtime
        requests>=2.31  # http
        Flask[async]==3.0 ; python_version >= "3.8"
        -r requirements-dev.txt
        -e git+https://github.com/example/widgets.git#egg=Widget_Kit
        pkg @ https://example.com/pkg-1.0.tar.gz
        long-name \\
            >=1.0
    """,
    "requirements-dev.txt": "flake8\n",
    "setup.cfg": """
        [metadata]
        name = shop

        [options]
        install_requires =
            click>=8
            attrs

        [options.extras_require]
        test =
            pytest

        [flake8]
        max-line-length = 100
    """,
    "shop/__init__.py": "",
    "shop/models/__init__.py": "",
    "tests/test_shop.py": "import unittest\n\nclass T(unittest.TestCase):\n    pass\n",
}


NODE = {
    "package.json": json.dumps(
        {
            "name": "web",
            "scripts": {"test": "vitest", "lint": "eslint src"},
            "dependencies": {"axios": "^1.6.0", "Express": "^4"},
            "devDependencies": {"vitest": "^1.0.0", "eslint": "^9", "typescript": "^5"},
            "jest": {"testEnvironment": "node"},
        },
        indent=2,
    ),
    "package-lock.json": "{}",
    "vitest.config.ts": "export default {}\n",
    ".eslintrc.json": "{}",
    "tsconfig.json": "{}",
    "src/components/Button.tsx": "export const Button = () => null\n",
    "src/components/Button.test.tsx": "test('x', () => {})\n",
    "src/index.ts": "export {}\n",
}


MONOREPO = {
    "package.json": json.dumps({"name": "mono", "private": True, "workspaces": ["packages/*"]}),
    "packages/api/package.json": json.dumps({"name": "api", "dependencies": {"express": "^4"}}),
    "packages/api/src/routes/users.ts": "export {}\n",
    "packages/web/package.json": json.dumps({"name": "web", "devDependencies": {"vitest": "^1"}}),
    "packages/web/vitest.config.ts": "export default {}\n",
    "packages/web/src/App.test.tsx": "\n",
    # a fixture inside the repository, not a member: never read, so its bad JSON does not matter
    "tests/fixtures/broken/package.json": "{ not json",
}


GO = {
    "go.mod": """
        module example.com/calc

        go 1.22

        require (
        \tgithub.com/go-chi/chi v1.5.5
        \tgithub.com/stretchr/testify v1.9.0 // indirect
        )

        require golang.org/x/vuln v1.1.0
    """,
    "main.go": "package main\n",
    "calc/calc.go": "package calc\n",
    "calc/calc_test.go": "package calc\n",
    "cmd/calc/main.go": "package main\n",
}


RUST = {
    "Cargo.toml": """
        [package]
        name = "calc"
        version = "0.1.0"

        [dependencies]
        serde_json = "1"
        http-client = { package = "reqwest", version = "0.12" }

        [dev-dependencies]
        rstest = "0.18"

        [target.'cfg(unix)'.dependencies]
        nix = "0.28"
    """,
    "src/lib.rs": "pub fn add() {}\n#[cfg(test)]\nmod tests {}\n",
    "tests/integration.rs": "#[test]\nfn it() {}\n",
}


RUBY = {
    "Gemfile": """
        source "https://rubygems.org"
        gem "rails", "~> 7.1"
        gem 'faraday'

        group :development, :test do
          gem "rspec-rails"
          gem "rubocop", require: false
        end

        platforms :jruby do
          gem "jdbc-sqlite3"
        end
        gem "puma"
    """,
    ".rspec": "--require spec_helper\n",
    "app/models/user.rb": "class User; end\n",
    "spec/models/user_spec.rb": "\n",
}
