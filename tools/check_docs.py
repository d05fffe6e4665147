"""Check README.md and REPORT.md against the repository: every relative link points at a file
that exists, and every `python <script>.py --flag …` they name is a real script with that flag.

    python tools/check_docs.py               # prints what is wrong, exits 1 if anything is

A flag counts as real when the script's own `--help` lists it, so renaming a flag without the
docs (or the docs inventing one) is caught.  Placeholders such as `…`, `<run>` or `CKPT` are
arguments, not files, and are not checked.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "REPORT.md")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")                  # [text](path) or ![alt](path)
COMMAND = re.compile(r"python3? ((?:tools/|bench/)?[\w]+\.py)((?: +[^\s`|#]+)*)")
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")


def links(text: str) -> list[str]:
    return [target for target in LINK.findall(text) if "://" not in target and not target.startswith("mailto:")]


def commands(text: str) -> list[tuple[str, list[str]]]:
    """(script, its --flags) for every `python x.py …` in the text."""
    return [(script, FLAG.findall(rest)) for script, rest in COMMAND.findall(text)]


@lru_cache(maxsize=None)
def help_text(root: Path, script: str) -> str:
    out = subprocess.run([sys.executable, str(root / script), "--help"], capture_output=True, text=True,
                         cwd=root, timeout=120)
    return out.stdout if out.returncode == 0 else ""


def problems(root: Path = ROOT, docs=DOCS) -> list[str]:
    texts = [(root / name).read_text() for name in docs if (root / name).exists()]
    scripts = {s for text in texts for s, _ in commands(text) if (root / s).exists()}
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:        # each --help is a process that
        list(pool.map(lambda s: help_text(root, s), scripts))    # imports torch: run them side by side
    found = []
    for name in docs:
        path = root / name
        if not path.exists():
            found.append(f"{name}: missing")
            continue
        text = path.read_text()
        for target in links(text):
            if not (path.parent / target).exists():
                found.append(f"{name}: link to {target}, which does not exist")
        for script, flags in commands(text):
            if not (root / script).exists():
                found.append(f"{name}: `python {script}` names a script that does not exist")
                continue
            listed = help_text(root, script)
            if not listed:
                found.append(f"{name}: `python {script} --help` fails")
                continue
            for flag in flags:
                if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", listed):
                    found.append(f"{name}: `python {script} … {flag}`: {script} has no such flag")
    return sorted(set(found))


def main() -> int:
    found = problems()
    for line in found:
        print(line)
    print(f"{len(found)} problem(s) in {', '.join(DOCS)}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
