"""Where a bench's numbers came from: tool version, git commit, the command, the ``--set``
overrides, the full resolved config, the machine and the wall time — written to
``provenance.json`` and shown in ``bench.md`` and ``report.html``."""

from __future__ import annotations

import html
import json
import os
import platform
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from leafiqa.config import RunConfig, config_to_dict
from leafiqa.version import __version__, git_commit


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "cpus": os.cpu_count(), "processor": platform.machine()}
    for module in ("numpy", "torch", "onnxruntime"):
        loaded = sys.modules.get(module)
        if loaded is not None:
            info[module] = getattr(loaded, "__version__", "?")
    return info


def collect(config: RunConfig, overrides: dict[str, Any] | None, *, started: float,
            quick: bool, seconds: float | None = None,
            extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Taken when a run starts (the commit is the code that ran, not whatever the tree holds
    at the end); ``started``: its ``time.time()``; ``overrides``: the ``--set`` pairs as given
    (already applied to ``config``); the caller sets ``wall_seconds`` when it ends."""
    return {
        "tool_version": __version__,
        "git_commit": git_commit(),
        "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "",
        "quick": quick,
        "overrides": dict(overrides or {}),
        "started_utc": datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds"),
        "wall_seconds": None if seconds is None else round(seconds, 1),
        "machine": machine(),
        **(extra or {}),
        "config": config_to_dict(config),
    }


def write_json(provenance: dict[str, Any], out: Path) -> Path:
    path = out / "provenance.json"
    path.write_text(json.dumps(provenance, indent=2, default=str) + "\n")
    return path


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def summary_lines(provenance: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, text) pairs of the headline facts; the config itself is shown whole below."""
    overrides = provenance.get("overrides") or {}
    machine_info = provenance.get("machine") or {}
    return [
        ("LEAF", f"{provenance.get('tool_version')} at commit {provenance.get('git_commit')}"),
        ("command", provenance.get("command") or ""),
        ("overrides (--set)", ", ".join(f"{k}={_value(v)}" for k, v in overrides.items())
         or "none"),
        ("started (UTC)", str(provenance.get("started_utc"))),
        ("wall time", f"{provenance.get('wall_seconds') or 0:.0f} s"),
        ("machine", ", ".join(f"{k} {v}" for k, v in machine_info.items())),
    ]


def markdown(provenance: dict[str, Any]) -> str:
    lines = ["## Provenance", ""]
    lines += [f"- **{label}**: `{text}`" if label in ("command", "overrides (--set)")
              else f"- **{label}**: {text}" for label, text in summary_lines(provenance)]
    config = json.dumps(provenance.get("config", {}), indent=2, default=str)
    lines += ["", "<details><summary>resolved config</summary>", "", "```json", config, "```",
              "", "</details>", "", "(all of it in provenance.json)"]
    return "\n".join(lines)


def html_block(provenance: dict[str, Any]) -> str:
    rows = "".join(f"<tr><td>{html.escape(label)}</td><td><code>{html.escape(text)}</code>"
                   "</td></tr>" for label, text in summary_lines(provenance))
    config = html.escape(json.dumps(provenance.get("config", {}), indent=2, default=str))
    return (f'<section id="provenance"><h2>Provenance</h2><table class="meta">{rows}</table>'
            f"<details><summary>resolved config</summary><pre>{config}</pre></details>"
            '<p>Also in <a href="provenance.json">provenance.json</a>.</p></section>')
