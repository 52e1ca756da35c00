"""``segfit demo``: the whole EMPS notebook workflow on built-in synthetic data, in minutes on a CPU."""

from __future__ import annotations

import json
import time
from pathlib import Path

# The demo recipe: the seed notebook's model on EM-like synthetic particles (96x96, grayscale).
DEMO = dict(n=80, size=96, epochs=40, batch_size=8, lr=2e-3)


def run_demo(out: str | Path = "segfit-demo", epochs: int | None = None, verbose: bool = True) -> dict:
    """Generate data, train, evaluate on the test split (pixels and objects), predict, measure the
    predicted objects; return where things are.

    Returns:
        ``{"data", "run", "evaluation", "predictions", "objects", "report", "metrics", "quantify"}``.
    """
    from segfit.data.synthetic import make_particles
    from segfit.evaluation import evaluate
    from segfit.predictor import Predictor
    from segfit.quantification import quantify
    from segfit.rundir import make_run_dir
    from segfit.runs import train

    say = print if verbose else (lambda *a, **k: None)
    start = time.perf_counter()
    root = make_run_dir(out)
    data = make_particles(root / "data", n=DEMO["n"], size=DEMO["size"], seed=0)
    say(f"Made a synthetic EM data set: {DEMO['n']} images with 16-bit instance maps in {data}/")
    run = train(data, root / "run", model="notebook", channels=1, epochs=epochs or DEMO["epochs"],
                batch_size=DEMO["batch_size"], lr=DEMO["lr"], test=0.2, val=0.2, seed=0, preload=True, verbose=verbose)
    metrics = evaluate(run.run_dir, split="test", instances=True, split_touching=True, verbose=verbose)
    split = json.loads((run.run_dir / "split.json").read_text())
    test_images = [data / "images" / f"{n}.png" for n in split["test"]]
    predictions = root / "predictions"
    Predictor.from_checkpoint(run.best_checkpoint).predict_files(test_images, predictions)
    objects = quantify([predictions], root / "objects", split_touching=True, min_area=4, verbose=verbose)
    say("")
    say(f"Demo finished in {time.perf_counter() - start:.0f} s. Test IoU {metrics['iou']:.3f}, Dice {metrics['dice']:.3f}, "
        f"accuracy {metrics['accuracy']:.3f}.")
    say(f"  data         {data}/")
    say(f"  run          {run.run_dir}/  (curves.png, history.csv, summary.json, checkpoints/)")
    say(f"  evaluation   {run.run_dir / 'eval_test'}/  (metrics.json, per_image.csv, confusion.csv, grid.png)")
    say(f"  predictions  {predictions}/  (NAME.png masks, NAME_overlay.png)")
    say(f"  objects      {root / 'objects'}/  (objects.csv, images.csv, size_distribution.png)")
    say(f"  report       {run.run_dir / 'report.html'}  (open it in a browser)")
    say("Next: segfit train YOUR_DATA --out runs/first --time 10m   (segfit plans the rest from the data)")
    return {"data": data, "run": run.run_dir, "evaluation": run.run_dir / "eval_test", "predictions": predictions,
            "objects": root / "objects", "report": run.run_dir / "report.html", "metrics": metrics,
            "quantify": objects}
