"""report.html: its sections, rebuilding it, what evaluate adds, the loggers, and the page in a real
(headless) Chromium: no console errors, no broken images, a screenshot."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from _segfit_cli import run_many

CHECK_SCRIPT = """<script>
window.__problems = [];
window.addEventListener('error', function (e) {
  __problems.push('error: ' + (e.message || (e.target && (e.target.alt || String(e.target.src).slice(0, 60))) || '?'));
}, true);
['error', 'warn'].forEach(function (level) {
  var original = console[level];
  console[level] = function () { __problems.push('console.' + level + ': ' + Array.from(arguments).join(' ')); original.apply(console, arguments); };
});
window.addEventListener('load', function () {
  var broken = [];
  document.querySelectorAll('img').forEach(function (img) {
    if (!img.complete || img.naturalWidth === 0) broken.push(img.alt || String(img.src).slice(0, 60));
  });
  var out = document.createElement('pre');
  out.id = 'segfit-check';
  out.textContent = JSON.stringify({problems: __problems, broken: broken, images: document.images.length,
                                    sections: Array.from(document.querySelectorAll('h2')).map(function (h) { return h.textContent; })});
  document.body.appendChild(out);
});
</script>"""

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--host-resolver-rules=MAP * ~NOTFOUND"]  # the page must not need the network


@pytest.fixture(scope="module")
def run_copy(tmp_path_factory, trained_run) -> Path:
    """A private copy of the shared trained run (this module writes into it)."""
    run = tmp_path_factory.mktemp("report") / "run"
    shutil.copytree(trained_run, run)
    return run


def test_training_writes_a_self_contained_report(run_copy):
    page = (run_copy / "report.html").read_text()
    for section in ("Data", "Configuration", "Training", "Validation (best checkpoint)", "Timing and environment"):
        assert f"<h2>{section}</h2>" in page
    # learning curves, per-class curves and gallery panels are inlined, nothing is fetched
    assert page.count("src=\"data:image/png;base64,") >= 2 + 3
    assert not re.search(r"(src|href)=\"(https?:|//|file:)", page)
    assert "<link" not in page and "@import" not in page
    config = json.loads((run_copy / "config.json").read_text())
    assert config["data"]["root"] in page  # the data set
    assert "truth \\ prediction" in page  # the confusion matrix heatmap
    assert "false positive" in page and "false negative" in page  # the error overlay legend
    env = json.loads((run_copy / "environment.json").read_text())
    assert env["versions"]["torch"] in page
    data = json.loads((run_copy / "data.json").read_text())
    split = json.loads((run_copy / "split.json").read_text())
    for which in ("train", "val", "test"):
        assert data["splits"][which]["images"] == len(split[which])
        assert sum(data["splits"][which]["class_fractions"]) == pytest.approx(1.0, abs=1e-4)
    assert (run_copy / "eval_val" / "per_image.csv").is_file()


def test_report_command_rebuilds_and_evaluate_adds_a_test_section(run_copy, tmp_path):
    (run_copy / "report.html").unlink()
    shutil.rmtree(run_copy / "eval_val")
    res = run_many([["report", run_copy], ["evaluate", run_copy, "--no-overlays"], ["report", tmp_path]], tmp_path)
    assert res[0].returncode == 0, res[0].stderr
    assert "report.html" in res[0].stdout
    page = (run_copy / "report.html").read_text()
    assert "Validation (best checkpoint)" in page  # the validation pass was redone
    assert res[1].returncode == 0, res[1].stderr
    page = (run_copy / "report.html").read_text()
    assert "<h2>Test set</h2>" in page
    outputs = json.loads((run_copy / "outputs.json").read_text())
    assert "eval_test" in outputs["evaluations"]
    assert res[2].returncode == 2 and "not a run folder" in res[2].stderr and "Traceback" not in res[2].stderr


def test_a_newer_best_checkpoint_is_scored_again_and_older_test_figures_are_marked(run_copy):
    """After a resumed training replaced best.ckpt, `segfit report` re-scores the validation images and marks the
    test section it cannot redo (it showed an interrupted run's first epoch as if current)."""
    import os
    import time

    from segfit.runs import report

    assert (run_copy / "eval_test" / "metrics.json").is_file()  # from the test above
    report(run_copy, verbose=False)
    assert "earlier best checkpoint" not in (run_copy / "report.html").read_text()
    best = run_copy / "checkpoints" / "best.ckpt"
    later = time.time() + 5
    os.utime(best, (later, later))  # as a resumed run's new best
    report(run_copy, verbose=False)
    assert (run_copy / "eval_val" / "metrics.json").stat().st_mtime >= later - 5  # re-scored
    page = (run_copy / "report.html").read_text()
    assert page.count("earlier best checkpoint") == 1 and f"segfit evaluate {run_copy} --split test" in page


def test_gallery_orders_validation_images_best_to_worst(tmp_path, particles_dir):
    import segfit
    from segfit.report_page import build_report

    result = segfit.train(particles_dir, tmp_path / "run", channels=1, epochs=1, batch_size=4, val=9, test=0.2, seed=3,
                          preload=True, verbose=False, logger="none")
    per_image = pd.read_csv(result.run_dir / "eval_val" / "per_image.csv")
    build_report(result.run_dir, gallery_size=2)
    page = (result.run_dir / "report.html").read_text()
    ranked = per_image.sort_values(["iou", "image"], ascending=[False, True])["image"].tolist()
    assert "The best 2" in page and "The worst 2" in page
    shown = re.findall(r"<tr><td class=\"l\">([^<]+)</td><td>", page.split("Validation images, by IoU")[1])
    assert shown == ranked[:2] + ranked[::-1][:2]
    assert not (result.run_dir / "logs").exists()  # --logger none


def test_csv_and_tensorboard_loggers(tmp_path, particles_dir):
    res = run_many([["train", particles_dir, "--out", tmp_path / "csv", "--channels", "1", "--epochs", "2", "--batch-size", "4",
                     "--no-report"],
                    ["train", particles_dir, "--out", tmp_path / "tb", "--channels", "1", "--epochs", "1", "--batch-size", "4",
                     "--logger", "tensorboard", "--no-report"],
                    ["train", particles_dir, "--out", tmp_path / "bad", "--logger", "wandb"]], tmp_path)
    assert res[0].returncode == 0, res[0].stderr
    logged = pd.read_csv(tmp_path / "csv" / "logs" / "version_0" / "metrics.csv")
    history = pd.read_csv(tmp_path / "csv" / "history.csv")
    assert list(logged["step"]) == [1, 2]
    assert logged["val_loss"].tolist() == pytest.approx(history["val_loss"].tolist())
    assert "val_iou_foreground" in logged
    assert not (tmp_path / "csv" / "report.html").exists()  # --no-report
    assert res[1].returncode == 0, res[1].stderr
    assert list((tmp_path / "tb" / "logs" / "version_0").glob("events.out.tfevents.*"))
    assert res[2].returncode == 2 and "--logger" in res[2].stderr and not (tmp_path / "bad").exists()


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if path := shutil.which(name):
            return path
    return None


@pytest.mark.skipif(_chromium() is None, reason="Chromium is not installed (.ci/run installs Debian's chromium)")
def test_report_in_headless_chromium(run_copy, tmp_path):
    import segfit

    segfit.evaluate(run_copy, split="test", instances=True, overlays=False, verbose=False)
    page = (run_copy / "report.html").read_text()
    probe = tmp_path / "report.html"
    probe.write_text(page.replace("<head>", "<head>" + CHECK_SCRIPT, 1))
    browser = _chromium()
    common = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*common, "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", "--dump-dom",
                          probe.as_uri()], capture_output=True, text=True, timeout=120)
    found = re.search(r"<pre id=\"segfit-check\">(.*?)</pre>", dom.stdout, re.S)
    assert found, f"the page did not finish loading: {dom.stderr[-2000:]}"
    check = json.loads(found.group(1).replace("&quot;", "\"").replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
    assert check["problems"] == [], check["problems"]
    assert check["broken"] == [], check["broken"]
    assert check["images"] >= 5
    assert "Test set" in check["sections"] and "Timing and environment" in check["sections"]
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    shot = tmp_path / "report.png"
    subprocess.run([*common, f"--screenshot={shot}", "--window-size=1280,4000", "--hide-scrollbars",
                    (run_copy / "report.html").as_uri()], capture_output=True, text=True, timeout=120)
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (1280, 4000)
        colours = im.convert("RGB").resize((64, 200)).getcolors(64 * 200)
    assert colours is None or len(colours) > 20  # something was drawn, not a blank page


def test_the_report_lists_the_images_the_model_expects_to_get_most_wrong(tmp_path):
    import numpy as np

    from segfit.report_page import _trust_note

    pd.DataFrame({"image": [f"im{i}" for i in range(8)], "iou": np.linspace(0.9, 0.2, 8),
                  "expected_error": np.linspace(0.05, 0.7, 8)}).to_csv(tmp_path / "per_image.csv", index=False)
    note = _trust_note(tmp_path, {"spearman_expected_error": 1.0, "spearman_with_error": 0.25})
    assert "Knowing when it is wrong" in note and "0.25" in note
    shown = re.findall(r"<td class=\"l\">(im\d)</td>", note)
    assert shown == ["im7", "im6", "im5", "im4", "im3"]  # the five largest expected errors, largest first
    assert _trust_note(tmp_path, {"spearman_expected_error": float("nan")}) == ""
    assert _trust_note(tmp_path, {}) == ""  # evaluations made before the expected error
