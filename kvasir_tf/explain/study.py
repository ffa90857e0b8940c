"""The saliency study: every chosen model explains the same images with every method it supports,
then localisation, agreement and faithfulness are summarised with bootstrap intervals.

Gradient methods need a Keras model; occlusion and RISE run on anything, including the int8
.tflite, with the same seeded masks for every model. Maps explain the image's true class where
it is known (so two models' maps answer the same question), else the model's prediction.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from kvasir_tf.compare import rows as R
from kvasir_tf.errors import KvasirError
from kvasir_tf.explain import gradients, metrics, perturbation, sources

GRADIENT_METHODS = tuple(gradients.EXPLAINERS)
PERTURBATION_METHODS = tuple(perturbation.EXPLAINERS)
METHODS = GRADIENT_METHODS + PERTURBATION_METHODS
DEFAULT_METHODS = ("saliency", "smoothgrad", "gradcam++", "occlusion", "rise")
TARGETS = ("label", "predicted")
# Model pairs whose maps are compared (first = reference): comparison rows, then a run folder's
# own Keras model against its int8 export.
PAIRS = (
    R.Pair(R.FLOAT_KERAS, R.SGT_KERAS, "plain vs SGT (float)"),
    R.Pair(R.FLOAT_KERAS, R.QAT_KERAS, "float vs QAT"),
    R.Pair(R.FLOAT_KERAS, R.PTQ_INT8, "float vs PTQ int8"),
    R.Pair(R.FLOAT_KERAS, R.QAT_INT8, "float vs QAT int8"),
    R.Pair(R.QAT_KERAS, R.QAT_INT8, "QAT vs its int8"),
    R.Pair(R.PACT_QAT_KERAS, R.PACT_QAT_INT8, "PACT-QAT vs its int8"),
    R.Pair(R.SGT_KERAS, R.SGT_PACT_QAT_KERAS, "SGT float vs SGT-PACT-QAT"),
    R.Pair(R.SGT_KERAS, R.SGT_PACT_QAT_INT8, "SGT float vs SGT-PACT-QAT int8"),
    R.Pair(R.SGT_PACT_QAT_KERAS, R.SGT_PACT_QAT_INT8, "SGT-PACT-QAT vs its int8"),
    R.Pair(R.FLOAT_KERAS, R.SGT_PACT_QAT_INT8, "float vs SGT-PACT-QAT int8"),
)
RUN_PAIRS = ((sources.RUN_KERAS, "int8", "Keras vs int8"),)   # names in a run folder
LOCALISATION = ("pointing", "energy_in_mask", "mask_top_k_iou", "mask_fraction")
AGREEMENT = ("spearman", "ssim", "top_k_iou")
FAITHFULNESS = ("deletion_auc", "deletion_random_auc", "insertion_auc", "insertion_random_auc")
CHUNK = 8                                  # images per explainer call (the progress bar's step)


@dataclass
class StudyConfig:
    methods: tuple = DEFAULT_METHODS
    models: tuple | None = None            # names; None = every Keras model and every int8 .tflite
    limit: int | None = 10                 # images per class (Kvasir-SEG frames: in total)
    top_k: float = metrics.DEFAULT_TOP_K
    faithfulness: int = 10                 # images per model and method with deletion/insertion curves
    rise_masks: int = perturbation.RISE_MASKS
    batch_size: int | None = perturbation.DEFAULT_BATCH   # None: by image size
    target: str = "label"
    seg_dir: str | None = None
    seed: int = 0


@dataclass
class Study:
    config: StudyConfig
    folder: Path
    models: dict                            # name -> ModelRef
    data: sources.ImageSet
    probs: dict = field(default_factory=dict)      # name -> [N, C]
    targets: dict = field(default_factory=dict)    # name -> [N]
    maps: dict = field(default_factory=dict)       # (name, method) -> [N, S, S]
    faith: dict = field(default_factory=dict)      # (name, method) -> [dict per image]
    results: dict = field(default_factory=dict)


def check_config(cfg: StudyConfig):
    bad = [m for m in cfg.methods if m not in METHODS]
    if bad or not cfg.methods:
        raise KvasirError(f"--methods: unknown {', '.join(bad) or '(none given)'}; choose from {', '.join(METHODS)}")
    if cfg.target not in TARGETS:
        raise KvasirError(f"--target {cfg.target!r}: use one of {', '.join(TARGETS)}")
    if cfg.limit is not None and cfg.limit < 1:
        raise KvasirError(f"--limit must be at least 1, got {cfg.limit}")
    if not 0 < cfg.top_k <= 100:
        raise KvasirError(f"--top-k must be a percentage in (0, 100], got {cfg.top_k}")


def load(ref: sources.ModelRef):
    if ref.kind == "keras":
        from kvasir_tf.model_io import load_model
        return load_model(ref.path)
    from kvasir_tf.runtime import TFLiteModel
    return TFLiteModel(ref.path)


def make_explainer(method, model, cfg: StudyConfig):
    if method in GRADIENT_METHODS:
        return gradients.EXPLAINERS[method](model, seed=cfg.seed)
    if method == "rise":
        return perturbation.RISE(model, cfg.batch_size, n_masks=cfg.rise_masks, seed=cfg.seed)
    return perturbation.Occlusion(model, cfg.batch_size)


def methods_for(ref, methods) -> list:
    return [m for m in methods if ref.kind == "keras" or m in PERTURBATION_METHODS]


def _image_size(model) -> int:
    from kvasir_tf.model_io import image_size_of
    return model.image_size if hasattr(model, "image_size") else image_size_of(model)


def run_study(folder, cfg: StudyConfig | None = None, progress: bool = True) -> Study:
    """Explain, measure and summarise; ``folder`` is a run or a comparison folder."""
    from tqdm.auto import tqdm
    cfg = cfg or StudyConfig()
    check_config(cfg)
    folder = Path(folder)
    refs = sources.select_models(sources.find_models(folder), cfg.models)
    run = sources.split_run(folder)
    loaded = {name: load(ref) for name, ref in refs.items()}
    sizes = {name: _image_size(m) for name, m in loaded.items()}
    if len(set(sizes.values())) != 1:
        raise KvasirError(f"the models take different image sizes {sizes}; explain them separately (--models)")
    size = next(iter(sizes.values()))
    data = (sources.seg_images(cfg.seg_dir, run, size, cfg.limit) if cfg.seg_dir
            else sources.test_images(run, size, cfg.limit))
    if len(data.images) == 0:
        raise KvasirError(f"no images to explain in {data.source}")
    study = Study(cfg, folder, refs, data)
    steps = sum(len(methods_for(r, cfg.methods)) for r in refs.values()) * len(data.images)
    bar = tqdm(total=steps, desc="saliency maps", unit="map", disable=not progress, dynamic_ncols=True)
    try:
        for name, model in loaded.items():
            _explain_model(study, name, model, bar)
    finally:
        bar.close()
    study.results = summarise(study)
    return study


def _explain_model(study: Study, name, model, bar):
    cfg, data = study.config, study.data
    predict = perturbation.predictor_for(model, cfg.batch_size)
    probs = predict(data.images)
    study.probs[name] = probs
    targets = probs.argmax(1)
    if cfg.target == "label":
        targets = np.where(data.labels >= 0, data.labels, targets)
    study.targets[name] = targets
    for method in methods_for(study.models[name], cfg.methods):
        bar.set_postfix_str(f"{name} {method}")
        explain = make_explainer(method, model if method in GRADIENT_METHODS else predict, cfg)
        parts = []
        for i in range(0, len(data.images), CHUNK):
            parts.append(explain(data.images[i:i + CHUNK], targets[i:i + CHUNK]))
            bar.update(len(parts[-1]))
        maps = np.concatenate(parts)
        study.maps[(name, method)] = maps
        n = min(cfg.faithfulness, len(maps))
        study.faith[(name, method)] = [
            metrics.deletion_insertion(predict, data.images[i], maps[i], int(targets[i]), seed=cfg.seed + i)
            for i in range(n)]


def pairs_of(models) -> list:
    """(a, b, label) of every pair whose two models are here; a pair of comparison rows can only
    name rows that exist (:mod:`kvasir_tf.compare.rows`), so a missing one means "not chosen"."""
    pairs = [(p.a.name, p.b.name, p.why) for p in PAIRS] + list(RUN_PAIRS)
    return [(a, b, label) for a, b, label in pairs if a in models and b in models]


def summarise(study: Study) -> dict:
    """Means and bootstrap intervals of every metric, plus what was explained."""
    cfg, data = study.config, study.data
    summ = lambda values: metrics.summarize(values, seed=cfg.seed)  # noqa: E731
    models = {}
    for name, ref in study.models.items():
        pred = study.probs[name].argmax(1)
        known = data.labels >= 0
        models[name] = {"kind": ref.kind, "path": str(ref.path),
                        "methods": methods_for(ref, cfg.methods),
                        "accuracy": float(np.mean(pred[known] == data.labels[known])) if known.any() else None}
    loc, agree, faith = {}, {}, {}
    for (name, method), maps in study.maps.items():
        if data.has_masks:
            rows = [metrics.localisation(m, mask, cfg.top_k) for m, mask in zip(maps, data.masks)
                    if mask is not None and mask.any()]
            loc.setdefault(name, {})[method] = {k: summ([r[k] for r in rows]) for k in LOCALISATION}
        rows = study.faith[(name, method)]
        if rows:
            faith.setdefault(name, {})[method] = {k: summ([r[k] for r in rows]) for k in FAITHFULNESS}
    for a, b, label in pairs_of(study.models):
        for method in study.config.methods:
            if (a, method) in study.maps and (b, method) in study.maps:
                rows = [metrics.agreement(x, y, cfg.top_k)
                        for x, y in zip(study.maps[(a, method)], study.maps[(b, method)])]
                agree.setdefault(f"{a} vs {b}", {"label": label})[method] = {
                    k: summ([r[k] for r in rows]) for k in AGREEMENT}
    cfg_doc = asdict(cfg)
    cfg_doc["methods"], cfg_doc["models"] = list(cfg.methods), list(study.models)
    return {"folder": str(study.folder), "images": {"source": data.source, "n": int(len(data.images)),
                                                    "with_masks": int(sum(m is not None and m.any() for m in data.masks)),
                                                    "class_names": data.class_names, "notes": data.notes},
            "config": cfg_doc, "models": models, "localisation": loc, "agreement": agree,
            "faithfulness": faith}
