"""The words of a bioimage.io package (:mod:`segfit.modelzoo`): its tensors' descriptions and its README.

The README documents the training data, the plan and the validation metrics from the run folder's own
records (``data.json``, ``plan.json``, ``eval_val/metrics.json``; ``cv_metrics.json`` for an ensemble), the
pixel scale the model expects (resizing is no operation of the specification), and how to open the package
in Fiji (deepImageJ), ilastik, napari/Python and segfit.
"""

from __future__ import annotations

from pathlib import Path

from segfit.rundir import read_json_if_any

KINDS = {"sigmoid": "probabilities (the specification's sigmoid of the network's logits)",
         "softmax": "probabilities (the specification's softmax of the network's logits over the classes)",
         None: "logits (no operation of the specification applies to only some channels: take the softmax of the "
               "class channels and the sigmoid of the last one)"}


def activation(config) -> str | None:
    """The specification's operation from logits to probabilities: sigmoid for one class logit (and the distance
    logit beside it), softmax over several; none for several classes with a distance map (no operation of the
    specification applies to part of the channels: those stay logits, as the README says)."""
    if config.model.class_channels == 1:
        return "sigmoid"
    return None if config.model.instances else "softmax"


def description(config, facts: dict) -> str:
    """The one-paragraph description of rdf.yaml."""
    d = config.data
    what = "classes " + ", ".join(d.class_names) + (" and each object's distance map" if config.model.instances else "")
    how = f"an ensemble of {facts['members']} models" if facts["members"] > 1 else "one model"
    how += f" averaged over {len(facts['variants'])} flips/rotations" if len(facts["variants"]) > 1 else ""
    return (f"Semantic segmentation ({what}) of {'grey' if d.channels == 1 else 'RGB'} images, trained with segfit "
            f"on {Path(d.root or 'data').name} ({how}). {scale_text(config)} See README.md for the data, the plan "
            f"and the validation metrics.")


def loss_name(config) -> str:
    """The training loss, ``auto`` resolved as segfit resolves it (BCE for one class logit, cross-entropy otherwise)."""
    loss = config.train.loss
    return loss if loss != "auto" else "bce" if config.model.class_channels == 1 else "ce"


def scale_text(config) -> str:
    """The pixel scale the model expects, in one sentence."""
    d = config.data
    if d.size:
        return f"In training every image was resized to {d.size} x {d.size} pixels: resize yours likewise first."
    if d.scale and d.scale != 1:
        return (f"The model works at {d.scale:.4g} x the pixel size of its training images (one model pixel = "
                f"{1 / d.scale:.4g} original pixels): resize images of that pixel size by {d.scale:.4g} first.")
    return "The model works at the pixel size of its training images (no resizing)."


def input_text(config, dtype: str, multiple: int) -> str:
    d = config.data
    scale = f", resized to {d.size}x{d.size}" if d.size else f", resized by {d.scale:.4g}" if d.scale and d.scale != 1 else ""
    return f"{'grey' if d.channels == 1 else 'RGB'} {dtype} image{scale}; y and x multiples of {multiple}"


def output_channels(config) -> list[str]:
    """Channel names: the foreground class for one sigmoid channel, every class for several; then the distance map."""
    names = list(config.data.class_names) or [f"class{i}" for i in range(config.model.num_classes)]
    names = names[1:2] if config.model.class_channels == 1 else names
    return names + (["distance"] if config.model.instances else [])


def output_text(config, kind: str | None) -> str:
    channels = output_channels(config)
    if kind == "sigmoid":
        text = f"{channels[0]} probability (> 0.5: {channels[0]})"
    elif kind == "softmax":
        text = "class probabilities (argmax: the class id)"
    else:
        text = "class logits (argmax: the class id)"
    if config.model.instances:
        text += "; last: object distance " + ("logit (sigmoid: 1 centre, 0 outline)" if kind is None else "(1 centre, 0 outline)")
    return text


def readme(config, multiple: int, name: str, authors: list[str], citations: list[tuple[str, str]], facts: dict) -> str:
    """The package's README.md (markdown)."""
    d, m = config.data, config.model
    kind = activation(config)
    channels = output_channels(config)
    lines = [f"# {name}", "", description(config, facts), "",
             f"Authors: {', '.join(authors)}. Made with segfit from the {facts['source']}.", "",
             "## Input", "",
             f"- {d.channels} channel{'s' if d.channels > 1 else ''} ({'grey' if d.channels == 1 else 'RGB'}): "
             + ("RGB images are converted to grey (luminance 0.299 R + 0.587 G + 0.114 B) by segfit; give the model grey "
                "images." if d.channels == 1 else "grey images are repeated into three channels by segfit; give RGB."),
             f"- Pixel scale: {scale_text(config)}",
             f"- Size: any height and width that are multiples of {multiple} (the network's stride); tools tile larger "
             "images.",
             f"- Image type: {facts['dtype']}"
             + (f" only: the run also learned from {' and '.join(facts['other_types'])} images; convert those to "
                f"{facts['dtype']} first (Fiji: Image > Type), or predict them with `segfit predict`, which reads every "
                "type." if facts.get("other_types") else "."),
             "- Preprocessing (in rdf.yaml, the run's own): the image to [0, 1] by its type's maximum (`scale_linear`, "
             f"gain {'1/255' if facts['dtype'] == 'uint8' else '1/65535' if facts['dtype'] == 'uint16' else '1'})"
             + (f", then `fixed_zero_mean_unit_variance` with mean {_short(d.mean[:d.channels])} and std "
                f"{_short(d.std[:d.channels])}." if d.mean is not None else "; no further normalisation."),
             "", "## Output", "",
             f"- {len(channels)} channel{'s' if len(channels) > 1 else ''} ({', '.join(channels)}): {KINDS[kind]}.",
             "- Class ids: " + (f"{channels[0]} where the probability exceeds 0.5." if m.class_channels == 1 else
                                "the class channel with the highest value (argmax).")]
    if m.instances:
        merge = facts.get("merge_level")
        lines.append("- `distance`: each object's normalised distance map (1 at its centre, 0 at its outline, where the "
                     "outline is the background or the next object). segfit grows the objects from the cores where it "
                     f"exceeds {facts.get('seed_level', 0.5):g}"
                     + (" (calibrated on the validation images)" if facts.get("seed_calibrated") else "") + " over the class map by "
                     "a watershed" + (f", and joins neighbours with no valley below {merge:g} between them" if merge else "")
                     + (f"; pieces under {facts['min_object_area']} px join the object they touch (isolated ones are dropped)"
                        if facts.get("min_object_area") else "")
                     + (f"; an object is dropped where the normalised entropy of the class probabilities exceeds "
                        f"{facts['unsure_level']:g} at every one of its pixels." if facts.get("unsure_level") is not None else "."))
    lines += ["", "## Training data", "", *_data(config, facts), "", "## The plan", "", *_plan(config, facts),
              "", "## Validation", "", *_validation(facts), "", "## Use it", "",
              *USAGE.format(multiple=multiple, output="probabilities" if kind else "logits",
                            batch="image[None, None]" if d.channels == 1 else "image.transpose(2, 0, 1)[None]").splitlines(),
              "", "## Cite", ""]
    lines += [f"- {text}. doi:{doi}" for text, doi in citations]
    return "\n".join(lines) + "\n"


def _short(values) -> str:
    return "[" + ", ".join(f"{float(v):.4g}" for v in values) + "]"


def _data(config, facts: dict) -> list[str]:
    d = config.data
    record = read_json_if_any(Path(facts["run"]) / "data.json") if facts["run"] else None
    lines = [f"- Data set: `{Path(d.root or 'data').name}`" + (f": {record['layout']}" if record else ""),
             f"- Classes: {', '.join(d.class_names)} (masks read as {d.mask_mode})"]
    if facts["ensemble"] is not None:
        lines.append(f"- An ensemble of {facts['members']} cross-validation folds: each member trained on the others' "
                     "folds of the training images; the figures below are the first member's.")
    for split, info in ((record or {}).get("splits") or {}).items():
        sizes = ", ".join(f"{k} ({v})" for k, v in list(info.get("sizes", {}).items())[:4])
        fractions = ", ".join(f"{n} {f:.3f}" for n, f in zip(d.class_names, info.get("class_fractions", [])))
        lines.append(f"- {split}: {info.get('images')} images; sizes {sizes}; class pixel fractions {fractions}")
    kind = "a validation image" if facts["run"] else "an image of the data set"
    lines.append(f"- Test input of this package: `{facts['sample']}` ({kind}) at the working scale.")
    return lines


def _plan(config, facts: dict) -> list[str]:
    plan = read_json_if_any(Path(facts["run"]) / "plan.json") if facts["run"] else None
    entries = (plan or {}).get("entries") or {}
    if entries:
        lines = ["| option | value | from | reason |", "|---|---|---|---|"]
        return lines + [f"| {k} | {e.get('value')} | {e.get('source')} | {e.get('reason')} |" for k, e in entries.items()]
    m, t = config.model, config.train
    net = "the seed notebook's encoder-decoder" if m.name == "notebook" else f"{m.name} with a {m.encoder} encoder (depth {m.encoder_depth})"
    return ["No automatic plan (fixed options):", "",
            f"- network: {net}; instances: {'yes' if m.instances else 'no'}",
            f"- {t.epochs} epochs, batch {t.batch_size}, {t.optimizer} at lr {t.lr:g}, schedule {t.scheduler}, loss {loss_name(config)}, "
            f"augmentation {t.augment}, precision {t.precision}",
            f"- Test-time variants averaged: {', '.join(facts['variants'])}"]


def _validation(facts: dict) -> list[str]:
    if facts["ensemble"] is not None:
        cv = read_json_if_any(Path(facts["ensemble"]) / "cv_metrics.json")
        if cv and "pooled" in cv:
            p = cv["pooled"]
            return [f"Cross-validation, out-of-fold ({p.get('images')} images, each scored by the one member that did "
                    "not train on it):", "", "| iou | dice | accuracy | mIoU |", "|---|---|---|---|",
                    f"| {p['iou']:.4f} | {p['dice']:.4f} | {p['accuracy']:.4f} | {p['miou']:.4f} |"]
    metrics = read_json_if_any(Path(facts["run"]) / "eval_val" / "metrics.json") if facts["run"] else None
    if not metrics:
        return ["No validation figures were found in the run folder (`segfit report RUN --refresh` writes them)."]
    lines = [f"The best checkpoint on the {metrics.get('images')} validation images, at their "
             f"{metrics.get('resolution', 'original')} resolution (foreground IoU, Dice, pixel accuracy: means over "
             "images; threshold 0.5 or argmax):", "",
             "| iou | dice | accuracy | mIoU |", "|---|---|---|---|",
             f"| {metrics['iou']:.4f} | {metrics['dice']:.4f} | {metrics['accuracy']:.4f} | {metrics['miou']:.4f} |", "",
             "| class | iou | dice | precision | recall |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {c['iou']:.4f} | {c['dice']:.4f} | {c['precision']:.4f} | {c['recall']:.4f} |"
              for name, c in (metrics.get("per_class") or {}).items()]
    if len(facts["variants"]) > 1:
        lines += ["", f"(Measured without test-time augmentation; this package averages {len(facts['variants'])} variants.)"]
    return lines + [""] + [f"Warning: {w}" for w in metrics.get("warnings", [])]


USAGE = """**Fiji (deepImageJ 3)**
1. Install deepImageJ: Help > Update... > Manage update sites, tick *DeepImageJ*, Apply, restart Fiji.
2. Plugins > DeepImageJ > DeepImageJ Install Model: choose the local zip file, select this package, accept; it is \
installed into Fiji's `models/` folder.
3. Open an image at the model's pixel scale (Image > Scale... when it needs resizing), grey or RGB as above.
4. Plugins > DeepImageJ > DeepImageJ Run: pick this model and run; the preprocessing and the probabilities come \
from rdf.yaml. Threshold the probability at 0.5 (Image > Adjust > Threshold) for the mask.

**ilastik (1.4.1 or later)**
1. Create a project with the *Neural Network Classification (Local)* workflow.
2. Input Data: add your images (at the model's pixel scale).
3. NN Prediction: load this package (the zip file); ilastik checks it and shows the probabilities with *Live Predict*.
4. Export Data: export the probabilities; threshold or take the argmax for the class ids.

**Python, or the napari console (bioimageio.core)**
```python
from bioimageio.core import load_description, predict
model = load_description("model.zip")
result = predict(model=model, inputs={{"input": {batch}}})  # 1 x C x H x W, H and W multiples of {multiple}
{output} = result.members["{output}"].data  # 1 x channels x H x W
```
`bioimageio test model.zip` reproduces the test output from the test input with each weight format.

**segfit**: `segfit predict model.zip IMAGES --out DIR` resizes, tiles and thresholds like the exported run \
(NAME.png class ids, overlays, coverage.csv)."""
