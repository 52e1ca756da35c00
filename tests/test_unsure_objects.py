"""Objects the model is nowhere sure of are not counted: the rule (segfit.objects.drop_unsure) and its
calibration on held-out images (segfit.instances.SeedSweep)."""

import numpy as np
from skimage.draw import disk

from segfit.instances import SeedSweep
from segfit.objects import distance_target, drop_unsure, least_unsure


def test_least_unsure_is_each_objects_surest_pixel_and_drop_keeps_objects_sure_somewhere():
    labels = np.array([[1, 1, 0, 2], [1, 1, 0, 2], [0, 0, 0, 0], [3, 3, 0, 0]], np.int32)
    unsure = np.array([[.9, .2, 0, .95], [.9, .9, 0, .85], [0, 0, 0, 0], [.5, .99, 0, 0]], np.float16)
    assert np.allclose(least_unsure(labels, unsure, 3), [0.2, 0.85, 0.5], atol=1e-3)
    kept = drop_unsure(labels, unsure, 0.8)
    assert kept.max() == 2 and (kept[:2, 3] == 0).all()  # object 2 dropped, the others renumbered in raster order
    assert (kept[:2, :2] == 1).all() and (kept[3, :2] == 2).all()
    assert drop_unsure(labels, unsure, None) is labels and drop_unsure(labels, None, 0.8) is labels


def _scene():
    """Two true discs the model is sure of, and three spurious blobs (textured ground) it is nowhere sure of."""
    truth_objects = np.zeros((96, 96), np.int32)
    predicted = np.zeros_like(truth_objects)
    unsure = np.full(truth_objects.shape, 0.05, np.float16)
    for i, (r, c) in enumerate([(25, 25), (25, 70)], 1):
        truth_objects[disk((r, c), 12)] = i
        predicted[disk((r, c), 12)] = i
        unsure[disk((r, c), 12)] = 0.3
        unsure[disk((r, c), 4)] = 0.02  # sure at the centre, unsure along the outline
    for i, c in enumerate([15, 48, 80], 3):
        predicted[disk((75, c), 7)] = i
        unsure[disk((75, c), 8)] = 0.85
    return truth_objects, predicted, unsure


def test_the_sweep_finds_the_level_that_drops_objects_the_model_is_nowhere_sure_of():
    truth_objects, predicted, unsure = _scene()
    truth, classes, distance = (truth_objects > 0).astype(np.uint8), (predicted > 0).astype(np.uint8), distance_target(predicted)
    sweep = SeedSweep(0)
    sweep.add(truth_objects, truth, classes, distance, unsure)
    best = sweep.best("a crafted image")
    assert best["unsure_level"] in (0.8, 0.7) and best["f1"] == 1.0
    assert best["f1_by_unsure"]["None"] == best["f1_by_unsure"]["0.9"] == round(2 * 2 / (2 + 5), 4)

    plain = SeedSweep(0)  # without an uncertainty map every object is kept, and no level is chosen
    plain.add(truth_objects, truth, classes, distance)
    assert plain.best("a crafted image")["unsure_level"] is None


def test_a_predictor_drops_the_objects_it_is_nowhere_sure_of():
    """A pixel-wise instance network on grey images (class and distance logits ``40 (pixel - 0.5)``): two bright
    discs it is sure of, three faint ones (pixel 133: foreground probability 0.70, normalised entropy 0.88)."""
    import torch

    from segfit.backends import TorchBackend
    from segfit.config import RunConfig
    from segfit.options import resolve_data
    from segfit.predictor import Predictor

    cfg = RunConfig()
    cfg.data.channels, cfg.data.num_classes, cfg.data.mean, cfg.data.std = 1, 2, [0.0], [1.0]
    resolve_data(cfg.data)
    cfg.model.in_channels, cfg.model.num_classes, cfg.model.instances = 1, 2, True
    net = torch.nn.Conv2d(1, 2, 1)
    with torch.no_grad():
        net.weight.fill_(40.0), net.bias.fill_(-20.0)
    image = np.zeros((96, 96), np.uint8)
    for c in (25, 70):
        image[disk((25, c), 12)] = 255
    for c in (15, 48, 80):
        image[disk((75, c), 7)] = 133
    predictor = Predictor(TorchBackend(net, cfg, "cpu"), auto_tile=0, tta=False)
    assert predictor.unsure_level is None and predictor.predict_full([image], objects=True)[0].objects.max() == 5
    predictor.unsure_level = 0.8
    result = predictor.predict_full([image], objects=True)[0]
    assert result.objects.max() == 2 and (result.objects[image == 255] > 0).all() and (result.objects[image == 133] == 0).all()
    assert result.uncertainty is None and (result.classes[image == 133] == 1).all()  # not asked for; the class map keeps them
