"""Every cross-reference in the repository resolves: a path named in Markdown, a docstring or a comment
is a file or folder of the repository (or an output its commands write, which git ignores), and a
section named (README or docs/<page>.md, a comma, then the heading in double quotes) is a heading of that file."""

from __future__ import annotations

import ast
import io
import re
import subprocess
import tokenize

import pytest

from tests.mnist_files import REPO

TRACKED = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
HISTORY = "docs/history.md"  # what was: it names files of its time, as a changelog does
PATH = re.compile(
    r"(?<![\w./-])((?:pipeline|tests|bench|docs|sample-images|metrics|reports|\.ci)/[\w./-]*\w|[\w-]+\.md)"
    r"(?!\.?[\w{*<-])"
)
SECTION = re.compile(r"\b(README(?:\.md)?|docs/[\w-]+\.md)(?:'s|,)? [\"“]([^\"”]+)[\"”]")


def prose(file: str) -> str:
    """What a reader reads of `file`: all of Markdown and YAML; of Python, the docstrings and comments."""
    text = (REPO / file).read_text()
    if not file.endswith(".py"):
        return text
    tree = ast.parse(text)
    docstrings = [
        ast.get_docstring(node) or ""
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
    ]
    comments = [t.string for t in tokenize.generate_tokens(io.StringIO(text).readline) if t.type == tokenize.COMMENT]
    return "\n".join(docstrings + comments)


READ = [f for f in TRACKED if f.endswith((".py", ".md", ".yaml")) or f == "Makefile"]


def exists(path: str, beside: str) -> bool:
    """A file or folder of the repository, from its root or the referring file's folder, or an output git ignores."""
    candidates = [REPO / path, (REPO / beside).parent / path]
    if any(candidate.exists() for candidate in candidates) or any(
        f == path or f.startswith(f"{path}/") for f in TRACKED
    ):
        return True  # (a tracked file counts while a stage has removed it to write it anew)
    ignored = subprocess.run(  # (a pattern like /bench/quick/ matches only a folder's path)
        ["git", "check-ignore", "--no-index", path, f"{path}/"], cwd=REPO, capture_output=True, check=False
    )
    return ignored.returncode == 0


def headings(file: str) -> set[str]:
    return {line.lstrip("#").strip() for line in (REPO / file).read_text().splitlines() if line.startswith("#")}


@pytest.mark.parametrize("file", [f for f in READ if f != HISTORY])
def test_every_path_named_is_in_the_repository(file):
    named = {match.group(1) for match in PATH.finditer(prose(file))}
    assert not {path for path in named if not exists(path, file)}, f"{file} names paths that do not exist"


@pytest.mark.parametrize("file", READ)
def test_every_section_named_is_a_heading_of_its_file(file):
    missing = []
    for document, section in SECTION.findall(prose(file)):
        target = "README.md" if document.startswith("README") else document
        if section not in headings(target):
            missing.append(f'{target}, "{section}"')
    assert not missing, f"{file} names sections that do not exist"
