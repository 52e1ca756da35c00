"""Run several `python -m segfit ...` command lines for the price of one interpreter start.

Importing torch and Lightning takes seconds, and most CLI tests need them. ``run_many`` starts ONE
Python subprocess that imports them once and then, for each command line, forks a child that runs
``segfit/__main__.py`` exactly as ``python -m segfit ARGS`` does (``runpy``, ``sys.argv``), with its
own working folder and its file descriptors 1 and 2 redirected to files. Each child is a separate
process with its own exit code, so results are as observable as from ``subprocess.run``: exit code,
everything written to stdout/stderr (Python and C level), and a traceback if one escaped.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

DRIVER = r"""
import json, os, runpy, sys
cases = json.loads(sys.argv[1])
import lightning.pytorch, torch, matplotlib  # noqa: F401  (the slow imports, done once)
codes = []
for case in cases:
    sys.stdout.flush(); sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.chdir(case["cwd"])
            out = os.open(case["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            err = os.open(case["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(out, 1); os.dup2(err, 2)
            sys.argv = ["segfit", *case["argv"]]
            try:
                runpy.run_module("segfit", run_name="__main__", alter_sys=True)
                code = 0
            except SystemExit as exc:
                if exc.code is None or isinstance(exc.code, int):
                    code = exc.code or 0
                else:
                    print(exc.code, file=sys.stderr)
            except BaseException:
                import traceback
                traceback.print_exc()
            sys.stdout.flush(); sys.stderr.flush()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    codes.append(os.waitstatus_to_exitcode(status))
print(json.dumps(codes))
"""


def run_many(commands: list[list], cwd: Path | list[Path], timeout: float = 500) -> list[subprocess.CompletedProcess]:
    """Run ``segfit ARGS`` for each ``ARGS`` in ``commands``, one after the other (in ``cwd``, one folder
    for all or one per command); return a ``CompletedProcess`` (returncode, stdout, stderr) for each."""
    cwds = cwd if isinstance(cwd, list) else [cwd] * len(commands)
    with tempfile.TemporaryDirectory(prefix="segfit-cli-") as tmp:
        cases = [{"argv": [str(a) for a in argv], "cwd": str(c), "stdout": f"{tmp}/{i}.out", "stderr": f"{tmp}/{i}.err"}
                 for i, (argv, c) in enumerate(zip(commands, cwds))]
        proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(cases)], capture_output=True, text=True,
                              timeout=timeout)
        assert proc.returncode == 0, f"driver failed: {proc.stderr}"
        codes = json.loads(proc.stdout.strip().splitlines()[-1])
        return [subprocess.CompletedProcess(["segfit", *case["argv"]], code, Path(case["stdout"]).read_text(),
                                            Path(case["stderr"]).read_text())
                for case, code in zip(cases, codes)]
