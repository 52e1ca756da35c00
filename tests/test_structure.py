"""The package's shape: no import cycles, small modules, inference without Lightning, the API is the CLI."""

from __future__ import annotations

import ast
import graphlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import segfit
from segfit.errors import SegfitError

SRC = Path(segfit.__file__).resolve().parent
ROOT = SRC.parents[1]


def _modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        name = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Package modules that ``name`` imports anywhere in its file (inside functions too)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            root = (f"{base}.{node.module}" if node.module else base) if node.level else node.module
            targets = [root] + [f"{root}.{a.name}" for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in modules and t != name}
    return found


def test_the_import_graph_has_no_cycle():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert "segfit.data.preprocess" in graph["segfit.data.cache"]  # the parser sees imports
    assert "segfit.options" in graph["segfit.data.check"]  # ... and imports inside functions
    try:
        list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")


def test_a_cycle_would_be_found(tmp_path):
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}}
    with pytest.raises(graphlib.CycleError):
        list(graphlib.TopologicalSorter(graph).static_order())


def test_modules_stay_small():
    sizes = {name: len(path.read_text().splitlines()) for name, path in _modules().items()}
    assert max(sizes.values()) <= 420, sorted(sizes.items(), key=lambda kv: -kv[1])[:3]


_PREDICT_WITHOUT_LIGHTNING = """
import sys
import numpy as np
from segfit.predictor import Predictor, predict
model, images, out = sys.argv[1], sys.argv[2], sys.argv[3]
mask = Predictor.from_checkpoint(model).predict(np.zeros((40, 40), np.uint8))
assert mask.shape == (40, 40)
written = predict(model, [images], out, verbose=False)
assert written, "nothing predicted"
if model.endswith(".ckpt"):  # a copied run folder: evaluate it and rebuild its report
    from segfit.evaluation import evaluate
    from segfit.runs import report
    from pathlib import Path
    run = Path(model).parents[1]
    assert evaluate(run, split="test", verbose=False)["images"] > 0
    assert report(run, verbose=False).is_file()
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("lightning", "pytorch_lightning", "torchmetrics"))
print("IMPORTED", ",".join(heavy))
"""


def test_inference_never_imports_lightning(trained_run, particles_dir, tmp_path):
    from segfit.exporter import export

    onnx = export(trained_run, tmp_path / "model.onnx", verbose=False)
    run = shutil.copytree(trained_run, tmp_path / "run")
    for model in (run / "checkpoints" / "best.ckpt", onnx):
        proc = subprocess.run([sys.executable, "-c", _PREDICT_WITHOUT_LIGHTNING, str(model),
                               str(particles_dir / "images"), str(tmp_path / f"out_{model.suffix[1:]}")],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.strip().splitlines()[-1] == "IMPORTED", (model, proc.stdout)
        assert len(list((tmp_path / f"out_{model.suffix[1:]}").glob("*_overlay.png"))) == 12


@pytest.mark.parametrize("option, value", [("optimizer", "adamm"), ("scheduler", "step"), ("augment", "heavy"),
                                           ("logger", "wandb"), ("model", "unet3d"), ("loss", "hinge")])
def test_bad_names_fail_before_the_run_folder_exists(particles_dir, tmp_path, option, value):
    out = tmp_path / "run"
    with pytest.raises(SegfitError, match=re.escape(repr(value))):
        segfit.train(particles_dir, out, channels=1, epochs=1, verbose=False, **{option: value})
    assert not out.exists()


def test_config_json_records_what_the_user_set(trained_run):
    config = json.loads((trained_run / "config.json").read_text())
    assert "channels" in config["user"] and "epochs" in config["user"]
    assert "optimizer" not in config["user"]  # a default, not the user's choice


def test_the_cli_passes_only_typed_options(particles_dir, tmp_path, monkeypatch):
    from segfit import cli

    seen = {}
    monkeypatch.setattr("segfit.runs.train", lambda data=None, out=None, **kw: seen.update(data=data, out=out, **kw))
    assert cli.main(["train", str(particles_dir), "--out", str(tmp_path / "r"), "-e", "3", "--channels", "1"]) == 0
    assert seen == {"data": str(particles_dir), "out": str(tmp_path / "r"), "epochs": 3, "channels": 1}
    seen.clear()
    (tmp_path / "x.ckpt").touch()  # paths are checked before the command runs
    assert cli.main(["train", "-d", str(particles_dir), "-m", str(tmp_path / "x.ckpt"), "--no-report"]) == 0
    assert seen == {"data": str(particles_dir), "out": None, "resume": str(tmp_path / "x.ckpt"), "report": False}


def test_channels_default_is_one_rule():
    from segfit import cli
    from segfit.config import DataConfig, ModelConfig

    parser = cli._build_parser()
    for command in ("train", "summary", "check", "show"):
        action = next(a for a in parser._subparsers._group_actions[0].choices[command]._actions if a.dest == "channels")
        default = f"(default: planned; {DataConfig.channels} with --no-plan)" if command == "train" else f"(default {DataConfig.channels})"
        assert default in action.help, (command, action.help)
    assert DataConfig.channels == ModelConfig.in_channels


def test_every_command_is_an_api_function():
    import inspect

    from segfit import cli

    commands = set(cli._build_parser()._subparsers._group_actions[0].choices)
    assert commands == set(cli.API)
    for command, (module, name) in cli.API.items():
        if command in ("demo",):
            continue
        public = command.replace("-", "_")
        assert getattr(segfit, public) is getattr(__import__(module, fromlist=[name]), name)
        params = set(inspect.signature(getattr(segfit, public)).parameters)
        parser = cli._build_parser()._subparsers._group_actions[0].choices[command]
        dests = {a.dest for a in parser._actions} - {"help", "debug", "directory"}
        takes_options = any(p.kind == p.VAR_KEYWORD for p in inspect.signature(getattr(segfit, public)).parameters.values())
        missing = dests - params
        assert takes_options or not missing, (command, missing)


def test_api_tools_work_like_their_commands(particles_dir, tmp_path):
    report = segfit.check(particles_dir, channels=1, verbose=False)
    assert report.ok and report.pairs == 12
    path = segfit.show(particles_dir, index=2, out=tmp_path / "pair.png", channels=1, verbose=False)
    assert path.is_file() and path.stat().st_size > 1000
    table = segfit.summary(size=64, channels=1, verbose=False)
    assert "Total params: 664,961" in table
    src = tmp_path / "colours"
    src.mkdir()
    from PIL import Image
    import numpy as np

    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[:4, :, 2] = 255  # blue: leaves in the vineyard palette
    Image.fromarray(rgb).save(src / "a.png")
    result = segfit.convert_masks(src, tmp_path / "ids", "vineyard")
    assert result["written"] == 1 and result["pixels"]["leaves"] == 32


def _readme_session() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- api-session -->\s*```python\n(.*?)```", text, re.S)
    assert match, "README.md has no Python session marked <!-- api-session -->"
    return match.group(1)


def test_the_readme_python_session_runs_verbatim(tmp_path):
    proc = subprocess.run([sys.executable, "-c", _readme_session()], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "runs" / "particles" / "eval_test" / "metrics.json").is_file()
    assert len(list((tmp_path / "predictions").glob("*_overlay.png"))) > 0
    assert (tmp_path / "objects" / "objects.csv").is_file()
    assert "test IoU" in proc.stdout


def test_written_files_follow_the_umask_and_json_is_strict(tmp_path):
    """Outputs are readable by colleagues where the umask says so (mkstemp alone makes them 0600), and a
    figure that is not a number is null, not NaN (which strict JSON readers refuse)."""
    import json

    import numpy as np

    from segfit import io

    io.write_json(tmp_path / "m.json", {"rho": float("nan"), "r32": np.float32("inf"), "per_class": np.array([0.5, np.nan]),
                                        "n": np.int64(3)})
    assert json.loads((tmp_path / "m.json").read_text()) == {"rho": None, "r32": None, "per_class": [0.5, None], "n": 3}
    io.write_png(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    for name in ("m.json", "a.png"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~io._UMASK
    assert io._UMASK == _umask_of_a_new_process()


def _umask_of_a_new_process() -> int:
    import subprocess
    import sys

    code = "import os; m = os.umask(0); print(m)"
    return int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout)
