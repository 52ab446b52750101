"""Zero-shot classification, a linear probe and retrieval: the clip-benchmark package's code against flava_kit's eval recipes.

One model (a tiny pretraining run of ``tests/fixtures/tiny_pretrain.yaml``, ``--steps`` steps, or
``--run DIR``) and one local labelled folder: ``--images`` synthetic held-out shapes written as PNGs
into one subfolder per class, named by ``flava_kit.data.synthetic.class_names()`` (spaces kept, so
torchvision's ``ImageFolder`` and flava_kit's ``labelled_folder`` name the classes alike). A second
folder of as many shapes from another seed is the linear probe's training set.

- clip-benchmark zero-shot: ``zero_shot_classifier`` and ``run_classification`` from
  ``clip_benchmark.metrics.zeroshot_classification``, over a torchvision ``ImageFolder`` loader, with
  the model, transform and tokenizer of flava_kit's adapter (``clip_benchmark_triple``). Its
  top-level ``evaluate()`` is not called: in clip-benchmark 1.6.2 its ``accuracy()`` calls
  ``float()`` on a 1-element array, which NumPy 2.4 refuses. Top-1 / top-5 are computed from the
  logits and targets it returns as that function does; mean per-class recall with
  ``balanced_accuracy_score``, as ``evaluate()`` does.
- clip-benchmark linear probe: ``clip_benchmark.metrics.linear_probe.evaluate`` cannot run here: it
  asserts ``device == 'cuda'``, moves everything to CUDA under ``DataParallel``, trains an AdamW probe
  sweeping 97 weight decays (not scikit-learn's L-BFGS that flava_kit's ``lbfgs`` probe uses), and
  ends in the same ``accuracy()``. So only its feature extractor (``Featurizer``, normalised image
  features) is used, and scikit-learn's ``LogisticRegression`` (L-BFGS, at the ``C`` our probe chose
  on its validation share) is fitted on those features: the reference for our probe's accuracy.
- ours: an eval recipe with ``zero_shot_classification`` (the same templates) and ``linear_probe``
  (``representation: projected``, ``train`` the second folder) over ``{type: labelled_folder}``,
  run through ``evaluate`` with a fresh feature cache.
- CLIP_benchmark's own webdataset layout (``clip-benchmark/wds_<name>`` on the HF Hub): the same
  held-out shapes written by its exporter (``clip_benchmark.webdataset_builder``) as a
  classification set (``classnames.txt``, ``zeroshot_classification_templates.txt``: the templates
  above with ``{c}``) and a retrieval set with five captions per image (five prompts of the image's
  class, each followed by its caption number spelled in eight vocabulary words, so no two captions
  are alike: identical captions tie, and ties are broken differently, ours for the true match, its
  ``topk`` by its sort). Theirs: ``build_dataset("wds/...", root=FOLDER)``, then the zero-shot
  classifier and loop as above and ``zeroshot_retrieval.evaluate`` (recall@1/5/10). Ours: the eval
  recipe ``{type: webdataset, urls: FOLDER}`` with no class names or templates (the dataset's),
  ``zero_shot_classification`` and ``retrieval``.

Printed: each metric both ways and whether they are equal (to 1e-6), the largest difference between
clip-benchmark's probe features and ours (read back from our cache), and images/s of the zero-shot
pass each way: ``--repeats`` timed passes, alternating, after one untimed pass each (the one whose
metrics are compared); and so for the two webdataset passes (images/s: images over a pass's seconds;
the retrieval pass also encodes five captions an image). Ours runs each timed pass with an empty cache; only the evaluation is timed,
never loading the model. Then each way's MFU: images/s times the FLOPs of a pass per image
(counted by ``torch.utils.flop_counter`` on clip-benchmark's compared pass; both run the same
forwards) over the device's peak.

``--device cuda`` runs both on the GPU (and prints each way's peak CUDA allocator memory over a
timed pass, above what was allocated before it); ``--precision`` autocasts the timed passes' forwards,
both ways, to bf16 / fp16 (clip-benchmark's ``amp`` switched on, inside flava_kit's autocast, so it
takes that dtype), after an untimed pass each way in that precision. The compared metrics always
come from fp32 passes: in reduced precision the two round at different points, so a near-tie may
flip and equality to 1e-6 is no longer the test.

    python benchmarks/eval_vs_clip_benchmark.py [--run DIR] [--images 600] [--batch-size 64] [--workers 0] [--repeats 3]
                                                [--device cpu] [--precision fp32] [--tiny]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # clip-benchmark's progress bars, before tqdm is imported

import numpy as np
import torch

import common
from wds_layout import KS, TEMPLATES, clip_benchmark_wds_retrieval, clip_benchmark_wds_zero_shot, wds_recipe, write_wds
from flava_kit.train.device import autocast

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "tiny_pretrain.yaml"
TOLERANCE = 1e-6
TINY_SIZES = {"steps": 2, "images": 48, "batch_size": 16, "repeats": 1}


def write_folder(root: Path, count: int, image_size: int, seed: int) -> None:
    """``count`` one-shape synthetic images as PNGs in ``root/<class name>/``; every class gets a folder."""
    from flava_kit.data.synthetic import SyntheticShapes, class_names

    names = class_names()
    for name in names:  # also the classes no image falls in, so both readers number the classes alike
        (root / name).mkdir(parents=True, exist_ok=True)
    shapes = SyntheticShapes(count, image_size, seed=seed, two_shapes=0.0)
    for index in range(count):
        item = shapes[index]
        item["image"].save(root / names[item["label"]] / f"{index:06d}.png")


def image_folder_loader(root: Path, transform, batch_size: int, workers: int) -> torch.utils.data.DataLoader:
    """A torchvision ``ImageFolder`` loader, in file order, as clip-benchmark builds for a local folder."""
    from torchvision.datasets import ImageFolder

    dataset = ImageFolder(str(root), transform=transform, allow_empty=True)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)


def clip_benchmark_zero_shot(triple: tuple, root: Path, batch_size: int, workers: int, device: str,
                             precision: str = "fp32") -> tuple[torch.Tensor, torch.Tensor, list[str]]:  # fmt: skip
    """(logits, targets, class names) from clip-benchmark's classifier and classification loop. In bf16 /
    fp16 its ``amp`` is on: its own ``torch.autocast(device)`` takes the dtype of the autocast around it
    (with ``amp`` off it would switch that one off)."""
    from clip_benchmark.metrics.zeroshot_classification import run_classification, zero_shot_classifier

    model, transform, tokenizer = triple
    loader = image_folder_loader(root, transform, batch_size, workers)
    templates = [template.replace("{}", "{c}") for template in TEMPLATES]
    amp = precision != "fp32"
    with autocast(torch.device(device), precision):
        classifier = zero_shot_classifier(model, tokenizer, loader.dataset.classes, templates, device, amp=amp)
        logits, target = run_classification(model, classifier, loader, device, amp=amp)
    return logits.float(), target, loader.dataset.classes


def clip_benchmark_metrics(logits: torch.Tensor, target: torch.Tensor, classes: int) -> dict:
    """What clip-benchmark's ``evaluate()`` reports, from its logits: top-k as its ``accuracy()``
    counts it (without the ``float()`` NumPy 2.4 refuses), ``balanced_accuracy_score`` as recall."""
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix

    top = logits.topk(5, 1, True, True).indices
    hits = top == target[:, None]
    predicted = logits.argmax(1)
    return {"accuracy": hits[:, :1].any(1).float().sum().item() / len(target), "acc@5": hits.any(1).float().sum().item() / len(target),
            "mean_per_class_recall": float(balanced_accuracy_score(target.numpy(), predicted.numpy())),
            "confusion": confusion_matrix(target.numpy(), predicted.numpy(), labels=list(range(classes))).tolist()}  # fmt: skip


@torch.no_grad()
def clip_benchmark_features(triple: tuple, root: Path, batch_size: int, workers: int, device: str) -> tuple[np.ndarray, np.ndarray]:
    """Image features and targets of a folder through clip-benchmark's linear-probe ``Featurizer``
    (normalised ``encode_image``), batch by batch as its ``evaluate()`` extracts them."""
    from clip_benchmark.metrics.linear_probe import Featurizer

    model, transform, _ = triple
    featurizer = Featurizer(model, normalize=True).to(device)
    features, targets = [], []
    for images, target in image_folder_loader(root, transform, batch_size, workers):
        features.append(featurizer(images.to(device)).float().cpu())
        targets.append(target)
    return torch.cat(features).numpy(), torch.cat(targets).numpy()


def sklearn_probe(train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], cost: float) -> float:
    """Test accuracy of scikit-learn's L-BFGS logistic regression at ``C=cost`` fitted on all training features."""
    from sklearn.linear_model import LogisticRegression

    return float(LogisticRegression(C=cost, solver="lbfgs", max_iter=1000).fit(*train).score(*test))


def eval_recipe(test_root: Path, train_root: Path | None, batch_size: int, workers: int, device: str, cache: Path, run: str):
    """Our eval recipe: zero-shot over the test folder, and (with ``train_root``) the linear probe."""
    from flava_kit.evaluation.recipe import load_eval_recipe

    data = {"type": "labelled_folder", "root": str(test_root)}
    tasks = {"zero_shot": {"type": "zero_shot_classification", "data": data, "templates": list(TEMPLATES)}}
    if train_root is not None:
        tasks["linear_probe"] = {"type": "linear_probe", "data": data, "train": {"type": "labelled_folder", "root": str(train_root)},
                                 "representation": "projected", "method": "lbfgs"}  # fmt: skip
    settings = {"batch_size": batch_size, "workers": workers, "device": device, "cache": str(cache)}
    return load_eval_recipe({"recipe_version": 1, "tasks": tasks, "settings": settings}, models={"model": run})


def our_features(loaded, recipe, role: str, cache: Path, batch_size: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The linear probe's ``role`` features as our evaluation cached them: (projected, labels, items encoded now)."""
    from flava_kit.evaluation.encode import dataset_features
    from flava_kit.recipe import build_node

    node = recipe.tasks["linear_probe"][role]
    found, encoded = dataset_features(loaded, build_node(node, kind="source", path=role), node, {"image"}, cache, batch_size)
    return np.asarray(found["image"].representations["projected"]), np.asarray(found["image"].labels), encoded["image"]


def timed_pass(function, device: torch.device) -> tuple[float, float | None]:
    """Seconds of ``function()`` and, on a GPU, the CUDA allocator's peak MiB above what was allocated before it."""
    if device.type != "cuda":
        return common.timed(function, device), None
    common.synchronize(device)
    common.reset_peak_memory(device)
    before = common.memory_mib(device)
    seconds = common.timed(function, device)
    return seconds, common.peak_memory_mib(device) - before


def spread(values: list[float]) -> str:
    """min / median / max."""
    return f"{min(values):.0f} / {statistics.median(values):.0f} / {max(values):.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="an existing run directory (default: pretrain the tiny fixture in a temporary one)")
    parser.add_argument("--steps", type=int, default=30, help="pretraining steps of the tiny fixture without --run (default 30)")
    parser.add_argument("--images", type=int, default=600, help="images in the labelled folder, and in the probe's training folder")
    parser.add_argument("--batch-size", type=int, default=64, help="the same for both")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers, the same for both")
    parser.add_argument("--repeats", type=int, default=3, help="timed zero-shot passes each way")
    common.add_arguments(parser)
    args = parser.parse_args()
    common.apply_tiny(parser, args, TINY_SIZES)
    device = common.resolve(args)
    args.device = device.type  # what both ways run on, as a name (clip-benchmark's autocast takes one)

    from flava_kit.checkpoints.loading import load_model
    from flava_kit.data.sources import SyntheticSource
    from flava_kit.evaluation.clip_benchmark import clip_benchmark_triple
    from flava_kit.evaluation.runner import evaluate

    tmp = Path(tempfile.mkdtemp(prefix="flava_kit_vs_clip_benchmark_"))
    os.environ["FLAVA_KIT_CACHE"] = str(tmp / "cache-default")  # nothing lands in the user's cache
    try:
        run = args.run
        if run is None:
            from flava_kit.train.run import pretrain

            run = str(tmp / "run")
            print(f"pretraining {FIXTURE.name} for {args.steps} steps ...", flush=True)
            pretrain(str(FIXTURE), [f"train.steps={args.steps}", "train.eval=null", f"train.checkpoint_every={args.steps}"], run_dir=run)
        loaded = load_model(run, args.device)
        loaded.digest()  # hashing the weights counts as loading the model, which is never timed
        triple = clip_benchmark_triple(loaded.model, loaded.processor(), loaded.tokenizer, loaded.text_length)
        test_root, train_root = tmp / "images", tmp / "probe_train"
        write_folder(test_root, args.images, loaded.image_size, SyntheticSource.HELD_OUT_SEED)
        write_folder(train_root, args.images, loaded.image_size, SyntheticSource.HELD_OUT_SEED + 1)
        wds_root = tmp / "wds"
        write_wds(wds_root, args.images, loaded.image_size, SyntheticSource.HELD_OUT_SEED)

        def theirs_pass(precision: str):
            return clip_benchmark_zero_shot(triple, test_root, args.batch_size, args.workers, args.device, precision)

        def ours_pass(recipe, precision: str) -> dict:
            with autocast(device, precision):
                return evaluate(recipe, loaded={"model": loaded})

        theirs_wds = {"wds_zero_shot": clip_benchmark_wds_zero_shot, "wds_retrieval": clip_benchmark_wds_retrieval}

        # The compared pass each way, in fp32 whatever --precision says: in bf16 / fp16 the two round at
        # different points (clip-benchmark averages the prompts and scores under autocast, ours scores
        # stored fp32 features), so a near-tie can flip. Untimed, it also warms both up; clip-benchmark's
        # counts the FLOPs of a pass (the same in any precision).
        compared = []
        flop_per_pass = common.count_flops(lambda: compared.append(theirs_pass("fp32")))
        logits, target, classes = compared[0]
        theirs = clip_benchmark_metrics(logits, target, len(classes))
        recipe = eval_recipe(test_root, train_root, args.batch_size, args.workers, args.device, tmp / "cache-compare", run)
        results = ours_pass(recipe, "fp32")["results"]["model"]
        zero_shot, probe = results["zero_shot"], results["linear_probe"]
        train_x, train_y = clip_benchmark_features(triple, train_root, args.batch_size, args.workers, args.device)
        test_x, test_y = clip_benchmark_features(triple, test_root, args.batch_size, args.workers, args.device)
        cost = probe["details"]["C"]
        theirs_probe = sklearn_probe((train_x, train_y), (test_x, test_y), cost)
        ours_train, ours_train_y, encoded_train = our_features(loaded, recipe, "train", tmp / "cache-compare", args.batch_size)
        ours_test, ours_test_y, encoded_test = our_features(loaded, recipe, "data", tmp / "cache-compare", args.batch_size)
        if encoded_train or encoded_test:  # read back, the probe's features must come from the cache the evaluation wrote
            print(f"warning: our features were recomputed ({encoded_train} + {encoded_test} items), not read from the cache")
        labels_equal = np.array_equal(train_y, ours_train_y) and np.array_equal(test_y, ours_test_y) and target.tolist() == ours_test_y.tolist()
        feature_gap = float(max(np.abs(train_x - ours_train).max(), np.abs(test_x - ours_test).max()))
        # The layout, both ways, in fp32: clip-benchmark's wds builder and evaluators, our webdataset source and tasks.
        wds_logits, wds_target, wds_loaded = clip_benchmark_wds_zero_shot(triple, wds_root, args.batch_size, args.workers, args.device)
        theirs_wds_zero_shot = clip_benchmark_metrics(wds_logits, wds_target, len(wds_loaded.classes))
        theirs_recalls = clip_benchmark_wds_retrieval(triple, wds_root, args.batch_size, args.workers, args.device)
        wds_results = ours_pass(wds_recipe(wds_root, args.batch_size, args.workers, args.device, tmp / "cache-compare", run), "fp32")
        ours_wds = wds_results["results"]["model"]

        # Timed zero-shot passes in --precision, alternating; ours from an empty cache every time.
        if args.precision != "fp32":  # an untimed pass each way first: the reduced-precision kernels' warm-up
            theirs_pass(args.precision)
            ours_pass(eval_recipe(test_root, None, args.batch_size, args.workers, args.device, tmp / "cache-warm-up", run), args.precision)
        speeds: dict[str, list[float]] = {"clip-benchmark": [], "ours": []}
        peaks: dict[str, list[float]] = {"clip-benchmark": [], "ours": []}  # GPU only
        for repeat in range(args.repeats):
            seconds, peak = timed_pass(lambda: theirs_pass(args.precision), device)
            speeds["clip-benchmark"].append(args.images / seconds)
            peaks["clip-benchmark"].append(peak)
            cache = tmp / f"cache-timed-{repeat}"
            timed = eval_recipe(test_root, None, args.batch_size, args.workers, args.device, cache, run)
            seconds, peak = timed_pass(lambda: ours_pass(timed, args.precision), device)
            speeds["ours"].append(args.images / seconds)
            peaks["ours"].append(peak)
            shutil.rmtree(cache, ignore_errors=True)
        for task in ("wds_zero_shot", "wds_retrieval"):  # the layout's passes, alike: theirs, then ours from an empty cache
            for repeat in range(args.repeats):
                seconds, _ = timed_pass(lambda: theirs_wds[task](triple, wds_root, args.batch_size, args.workers, args.device, args.precision),
                                        device)  # fmt: skip
                speeds.setdefault(f"{task} clip-benchmark", []).append(args.images / seconds)
                cache = tmp / f"cache-{task}-{repeat}"
                timed = wds_recipe(wds_root, args.batch_size, args.workers, args.device, cache, run, task)
                seconds, _ = timed_pass(lambda: ours_pass(timed, args.precision), device)
                speeds.setdefault(f"{task} ours", []).append(args.images / seconds)
                shutil.rmtree(cache, ignore_errors=True)

        ours = {**zero_shot["metrics"], "confusion": zero_shot["details"]["confusion"]}
        print(f"\n{args.images} held-out shapes, {len(classes)} classes, model {loaded.source}, {args.device}, "
              f"batch {args.batch_size}, {args.workers} workers")  # fmt: skip
        print(f"{'metric':<36}{'clip-benchmark':>16}{'ours':>16}{'equal':>8}")
        for metric in ("accuracy", "acc@5", "mean_per_class_recall"):
            equal = abs(theirs[metric] - ours[metric]) <= TOLERANCE
            print(f"{'zero_shot ' + metric:<36}{theirs[metric]:>16.6f}{ours[metric]:>16.6f}{'yes' if equal else 'NO':>8}")
        print(f"{'zero_shot confusion matrix':<36}{'':>16}{'':>16}{'yes' if theirs['confusion'] == ours['confusion'] else 'NO':>8}")
        ours_probe = probe["metrics"]["accuracy"]
        probe_equal = abs(theirs_probe - ours_probe) <= TOLERANCE
        print(f"{f'linear_probe accuracy (C={cost:g})':<36}{theirs_probe:>16.6f}{ours_probe:>16.6f}{'yes' if probe_equal else 'NO':>8}")
        print(f"{'probe features max |diff|':<36}{feature_gap:>32.2e}{'yes' if feature_gap <= TOLERANCE else 'NO':>8}")
        print(f"{'labels, file order':<36}{'':>32}{'yes' if labels_equal else 'NO':>8}")
        wds_zero_shot = {**ours_wds["wds_zero_shot"]["metrics"], "confusion": ours_wds["wds_zero_shot"]["details"]["confusion"]}
        for metric in ("accuracy", "acc@5", "mean_per_class_recall"):
            mine, other = wds_zero_shot[metric], theirs_wds_zero_shot[metric]
            print(f"{'wds zero_shot ' + metric:<36}{other:>16.6f}{mine:>16.6f}{'yes' if abs(mine - other) <= TOLERANCE else 'NO':>8}")
        same = theirs_wds_zero_shot["confusion"] == wds_zero_shot["confusion"]
        print(f"{'wds zero_shot confusion matrix':<36}{'':>32}{'yes' if same else 'NO':>8}")
        details = ours_wds["wds_zero_shot"]["details"]
        their_templates = [template.replace("{c}", "{}") for template in wds_loaded.templates]
        read = details["class_names"] == wds_loaded.classes and details["templates"] == their_templates == list(TEMPLATES)
        print(f"{'wds class names, templates read':<36}{'':>32}{'yes' if read and details['templates_from'] == 'dataset' else 'NO':>8}")
        # clip-benchmark's text_retrieval is image -> text, its image_retrieval text -> image
        for ours_name, their_name in (("image_to_text", "text_retrieval"), ("text_to_image", "image_retrieval")):
            for k in KS:
                mine, other = ours_wds["wds_retrieval"]["metrics"][f"{ours_name}_R@{k}"], theirs_recalls[f"{their_name}_recall@{k}"]
                print(f"{f'wds {ours_name}_R@{k}':<36}{other:>16.6f}{mine:>16.6f}{'yes' if abs(mine - other) <= TOLERANCE else 'NO':>8}")
        print(f"(the webdataset layout: {args.images} images, {ours_wds['wds_retrieval']['details']['pairs']} captions, "
              f"{len(wds_loaded.classes)} classes)")  # fmt: skip
        precision = "" if args.precision == "fp32" else f", {args.precision} autocast (the metrics above: fp32)"
        print(f"\nzero-shot pass, images/s (min / median / max of {args.repeats}; ours from an empty cache{precision})")
        for way in ("clip-benchmark", "ours"):
            print(f"{way:<36}{spread(speeds[way]):>24}")
        ratio = statistics.median(speeds["ours"]) / statistics.median(speeds["clip-benchmark"])
        print(f"{'ours / clip-benchmark (median)':<36}{ratio:>24.2f}  ({'meets' if ratio >= 1.0 else 'BELOW'} the target 1.0)")
        if device.type == "cuda":
            print("peak CUDA allocator MiB of a timed pass, above what was allocated before it (max of the repeats)")
            for way, values in peaks.items():
                print(f"{way:<36}{max(values):>24.0f}")
        peak = common.device_peak(device, args.precision, measure_size=512 if args.tiny else None)
        print(common.mfu_line({way: statistics.median(speeds[way]) / args.images * flop_per_pass for way in ("clip-benchmark", "ours")}, peak))
        print(f"({common.gflop_text(flop_per_pass)} GFLOP per pass of {args.images} images and the class prompts, "
              "counted by torch.utils.flop_counter)")  # fmt: skip
        for task, what in (("wds_zero_shot", "webdataset zero-shot pass"), ("wds_retrieval", "webdataset retrieval pass (5 captions each)")):
            print(f"\n{what}, images/s (min / median / max of {args.repeats}; ours from an empty cache{precision})")
            for way in ("clip-benchmark", "ours"):
                print(f"{way:<36}{spread(speeds[f'{task} {way}']):>24}")
            wds_ratio = statistics.median(speeds[f"{task} ours"]) / statistics.median(speeds[f"{task} clip-benchmark"])
            print(f"{'ours / clip-benchmark (median)':<36}{wds_ratio:>24.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
