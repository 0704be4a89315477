"""What every benchmark records beside its figures: the machine, the command and the date."""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def provenance() -> dict[str, Any]:
    """Date, machine (with the CPU features that decide bf16/int8 speed), the load average when the benchmark
    started (a loaded machine's figures are not comparable), command and versions."""
    import torch

    from hrnet.runtime.precision import cpu_support

    return {
        "date": datetime.date.today().isoformat(),
        "machine": f"{cpu_model()}, {os.cpu_count()} cores",
        "cpu_features": cpu_support().describe(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "command": " ".join([".venv/bin/python", *sys.argv]),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def cpu_kind() -> str:
    """The kind of CPU a result is filed under: "avx512_bf16" where bf16 is native, else "avx2" (their speeds
    differ several times over, so each kind keeps its own figures)."""
    from hrnet.runtime.precision import cpu_support

    return "avx512_bf16" if cpu_support().bf16 else "avx2"


def write_results(name: str, report: dict[str, Any], lines: list[str]) -> None:
    """``bench/results/<name>.json`` (figures) and ``<name>.md`` (the same, to read)."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=1) + "\n")
    header = [
        f"- date: {report['date']}",
        f"- machine: {report['machine']}; Python {report['python']}, torch {report['torch']}",
        *([f"- CPU: {report['cpu_features']}"] if "cpu_features" in report else []),
        *(
            [f"- load average at the start (1, 5, 15 min): {report['load_average']}"]
            if "load_average" in report
            else []
        ),
        f"- command: `{report['command']}`",
        "",
    ]
    (RESULTS / f"{name}.md").write_text("\n".join([lines[0], "", *header, *lines[1:]]) + "\n")
    print("\n".join(lines))
