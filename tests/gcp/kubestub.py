"""Stand-in ``kubectl`` and ``helm`` executables for tests: :func:`install` writes them to a
folder; each call appends ``{tool, argv, stdin, kubeconfig_mode}`` to ``calls.jsonl`` there and
answers from a small JSON state, so the real ToolRunner and proc.run are exercised end to end."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path

STATE_ENV = "EDGE_KUBESTUB_DIR"


def install(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    root = Path(__file__).resolve().parents[2]
    for tool in ("kubectl", "helm"):
        path = folder / tool
        path.write_text(
            f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(root)!r})\n"
            f"from tests.gcp.kubestub import main\nsys.exit(main({tool!r}))\n"
        )
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    (folder / "state.json").write_text(json.dumps({"secrets": {}, "releases": {}}))
    return folder


def calls(folder: Path) -> list[dict[str, object]]:
    log = folder / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def main(tool: str) -> int:
    folder = Path(os.environ[STATE_ENV])
    argv = sys.argv[1:]
    stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    mode = None
    if "--kubeconfig" in argv:
        kubeconfig = argv[argv.index("--kubeconfig") + 1]
        mode = oct(os.stat(kubeconfig).st_mode & 0o777)
        argv = argv[: argv.index("--kubeconfig")] + argv[argv.index("--kubeconfig") + 2 :]
    with open(folder / "calls.jsonl", "a") as log:
        log.write(json.dumps({"tool": tool, "argv": argv, "stdin": stdin, "kubeconfig_mode": mode}) + "\n")
    if tool == "kubectl" and argv[:1] == ["port-forward"]:  # runs until the caller stops it
        sys.stdout.write("Forwarding from 127.0.0.1:40000 -> 27017\n")
        sys.stdout.flush()
        time.sleep(120)
        return 0
    state = json.loads((folder / "state.json").read_text())
    out, code, err = _answer(tool, argv, stdin, state)
    (folder / "state.json").write_text(json.dumps(state))
    sys.stdout.write(out)
    sys.stderr.write(err)
    return code


def _answer(tool: str, argv: list[str], stdin: str, state: dict) -> tuple[str, int, str]:  # type: ignore[type-arg]
    ns = argv[argv.index("--namespace") + 1] if "--namespace" in argv else "default"
    if tool == "kubectl":
        if argv[:2] == ["get", "secret"]:
            secret = state["secrets"].get(f"{ns}/{argv[2]}")
            if secret is None:
                return "", 1, f'Error from server (NotFound): secrets "{argv[2]}" not found\n'
            return json.dumps({"kind": "Secret", "data": secret}), 0, ""
        if argv[:2] == ["get", "service"]:
            return f"service/{argv[2]}\n", 0, ""
        if argv[:1] == ["rollout"]:
            return f"{argv[2]} {argv[1]}ed\n", 0, ""
        if argv[:1] == ["apply"]:
            for item in json.loads(stdin)["items"]:
                if item["kind"] == "Secret":
                    meta = item["metadata"]
                    state["secrets"][f"{meta['namespace']}/{meta['name']}"] = item["data"]
            return "secret/configured\n", 0, ""
    if tool == "helm":
        if argv[:1] == ["list"]:
            name = argv[argv.index("--filter") + 1].strip("^$")
            release = state["releases"].get(f"{ns}/{name}")
            listed = [] if release is None else [{"name": name, "status": "deployed", "chart": "sacred-0.2.0"}]
            return json.dumps(listed), 0, ""
        if argv[:2] == ["get", "values"]:
            return json.dumps(state["releases"][f"{ns}/{argv[2]}"]), 0, ""
        if argv[:1] == ["upgrade"]:
            state["releases"][f"{ns}/{argv[2]}"] = json.loads(stdin)
            return "Release has been upgraded.\n", 0, ""
    return "", 2, f"kubestub: unexpected {tool} {argv}\n"
