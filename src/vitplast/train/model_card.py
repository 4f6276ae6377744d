"""Model cards of the bundled micro-ViTs: the regime a checkpoint reached, and the Markdown rendering of
``model_card.json``.

The regime is measured by the analysis pipeline (``vitplast analyze``'s defaults: ``mini:source`` against
``mini:digits``, 256 pairs, embedding mode, the model's own normalisation) and compared with two targets
that a ViT pretrained on a large data set meets (``docs/diagnostics.md``, "Regime targets and indicators"):

* embedded-token RMS per element on the source stream (patch and class tokens) ``>= 0.5``;
* LayerNorm scales moved off their initial value: ``rms(|gamma - 1|) >= 0.2`` in at least one LayerNorm.

Beside them the card records the regime indicators of ``docs/diagnostics.md`` (no thresholds): per block, on the
source stream, ``RMS(E(x)) / RMS(LN1 output)``, the forward pass's mean attention distance and the residual
growth; the ranking by the scale-invariant R; with ``vitb_scale``, the ranking at the embedding scale that gives
the tokens ViT-B/16's RMS; and (:func:`probe_gap`) the linear-probe accuracy of the model against the same
architecture at random initialisation. Attention entropies are recorded as diagnostics only.
"""

from __future__ import annotations

from typing import Any

#: Regime targets (module docstring).
REGIME_TARGETS: dict[str, float] = {"token_rms": 0.5, "gamma_dev": 0.2}
#: Per-block regime indicators recorded from the diagnostics' layer table (source stream).
INDICATORS = ("embed_ln1_ratio", "attn_distance", "residual_growth")
#: Target of :func:`probe_gap` (12 classes, 1,200 test images; not in the pretraining data).
PROBE_DATA = "mini:textures"


def regime(model: str, device: str = "auto", pairs: int = 256, vitb_scale: float | None = None) -> dict[str, Any]:
    """The regime of ``model`` (a model spec) as recorded in a model card (:func:`regime_from`); with
    ``vitb_scale`` the same pass also measures the plasticity at that embedding scale."""
    from vitplast.analysis import run_analysis
    from vitplast.analysis_config import AnalyzeConfig

    scales = (1.0,) if vitb_scale is None else (1.0, vitb_scale)
    return regime_from(run_analysis(AnalyzeConfig(model=model, device=device, pairs=pairs, embed_scale=scales)))


def probe_gap(model: str, data: str = PROBE_DATA, device: str = "auto") -> dict[str, Any]:
    """Linear-probe test accuracy (``vitplast probe``) of ``model`` and of the same architecture at random
    initialisation on ``data``: what pretraining contributes to the features."""
    from vitplast.train.probe import linear_probe

    acc = {k: linear_probe(model, data, device=device, random_weights=k == "random")["test_acc"]
           for k in ("pretrained", "random")}
    return {"data": data, **acc}


def regime_from(res: Any) -> dict[str, Any]:
    """Token RMS, per-layer ``rms(|gamma - 1|)``, attention entropy (a diagnostic) and the :data:`INDICATORS`
    (source stream), the plasticity ranking (mean over layers, over layers >= 1, by R, and at the second embedding
    scale when the analysis has one) and which :data:`REGIME_TARGETS` are met, from an
    :class:`~vitplast.analysis_result.AnalysisResult`."""
    d, cfg = res.diagnostics, res.config
    tok = d.tokens.set_index(["stream", "tokens"])
    lay = d.layers
    depth = int(lay["layer"].max()) + 1
    middle = list(range(1, depth - 1))
    entropy = {f"{s}{suffix}": [float(v) for v in lay[lay["stream"] == s].sort_values("layer")[f"attn_entropy{suffix}"]]
               for s in ("source", "target") for suffix in ("_embedded", "")}
    ln = d.layernorm
    gamma_dev = {c: [float(v) for v in ln[ln["component"] == c].sort_values("layer")["gamma_dev_rms"]]
                 for c in ("ln1", "ln2")}
    summary = res.summary.set_index("component")
    token_rms = float(tok.loc[("source", "all"), "rms"])
    met = {
        "token_rms": token_rms >= REGIME_TARGETS["token_rms"],
        "gamma_dev": max(max(v) for v in gamma_dev.values()) >= REGIME_TARGETS["gamma_dev"],
    }
    from vitplast.plasticity import summarize

    src = lay[lay["stream"] == "source"].sort_values("layer")
    extra: dict[str, Any] = {}
    if len(res.scales) > 1:
        at = res.scales[1]
        means = summarize(at.table, res.config.rank_by).set_index("component")["mean"]
        extra = {"vitb_scale": at.embed_scale,
                 "ranking_vitb_scale": " > ".join(means.sort_values(ascending=False).index.str.upper())}
    return {
        "measured_with": f"vitplast analyze --model SPEC (source {cfg.source}, target {cfg.target}, "
                         f"{res.plasticity.n_pairs} pairs, {cfg.mode} mode, {cfg.normalization} normalisation)",
        "token_rms": {"source": token_rms, "target": float(tok.loc[("target", "all"), "rms"]),
                      "source_patch": float(tok.loc[("source", "patch"), "rms"])},
        "gamma_dev_rms": gamma_dev,
        "attn_entropy": entropy,
        "middle_layers": middle,
        "plasticity_mean": {c: float(summary.loc[c, "mean"]) for c in summary.index},
        "ranking_mean": " > ".join(summary.sort_values("mean", ascending=False).index.str.upper()),
        "ranking_mean_l1": " > ".join(summary.sort_values("mean_l1", ascending=False).index.str.upper()),
        "ranking_relative": " > ".join(
            res.relative_summary.set_index("component")["mean"].sort_values(ascending=False).index.str.upper()),
        "indicators": {k: [float(v) for v in src[k]] for k in INDICATORS},
        "uniform_attn_distance": d.uniform_attn_distance,
        "token_rms_vitb": d.to_dict()["paper_reference"]["rms_per_element"],
        **extra,
        "targets": REGIME_TARGETS,
        "met": met,
    }


def regime_row(r: dict[str, Any]) -> str:
    """One table row's cells: token RMS, max ``rms(|gamma - 1|)`` (each with its verdict), max middle-block
    entropy on E(x) (a diagnostic, no target), ranking."""
    gd = max(max(v) for v in r["gamma_dev_rms"].values())
    ent = max(r["attn_entropy"]["source_embedded"][i] for i in r["middle_layers"])
    tick = {True: "yes", False: "no"}
    return (f"{r['token_rms']['source']:.2f} ({tick[r['met']['token_rms']]}) | {gd:.2f} ({tick[r['met']['gamma_dev']]}) "
            f"| {ent:.2f} | {r['ranking_mean']}")


def _regime_markdown(r: dict[str, Any] | None, gap: dict[str, Any] | None = None) -> list[str]:
    if not r:
        return []
    t = r["targets"]
    layers = range(len(r["gamma_dev_rms"]["ln1"]))

    def row(label: str, values: list[float]) -> str:
        return f"| {label} | " + " | ".join(f"{v:.2f}" for v in values) + " |"

    ind = r.get("indicators", {})
    labels = {"embed_ln1_ratio": "RMS(E(x)) / RMS(LN1 output)", "attn_distance": "attention distance (patches)",
              "residual_growth": "residual growth RMS(out) / RMS(in)"}
    lines = [
        "## Regime",
        "",
        f"Measured with `{r['measured_with']}`; targets and indicators from `docs/diagnostics.md` "
        "(\"Regime targets and indicators\").",
        "",
        f"| token RMS, source (>= {t['token_rms']}) | max rms\\|gamma - 1\\| (>= {t['gamma_dev']}) | max attention "
        "entropy on E(x), middle blocks (diagnostic) | plasticity ranking (mean over layers) |",
        "|---|---|---|---|",
        f"| {regime_row(r)} |",
        "",
        "| layer | " + " | ".join(str(i) for i in layers) + " |",
        "|---|" + "---:|" * len(layers),
        row("rms\\|gamma - 1\\| LN1", r["gamma_dev_rms"]["ln1"]),
        row("rms\\|gamma - 1\\| LN2", r["gamma_dev_rms"]["ln2"]),
        *[row(labels[k] + ", source", ind[k]) for k in labels if k in ind],
        *[row(f"attention entropy, {label}", r["attn_entropy"][key])
          for key, label in (("source_embedded", "source on E(x)"), ("target_embedded", "target on E(x)"),
                             ("source", "source, forward pass"), ("target", "target, forward pass"))],
        "",
        "Plasticity, mean over layers: " + ", ".join(f"{c.upper()} {v:.2f}" for c, v in r["plasticity_mean"].items())
        + f"; ranking over layers >= 1: {r['ranking_mean_l1']}.",
        "",
    ]
    if "ranking_relative" in r:
        lines += [f"Ranking by the scale-invariant R (mean over layers): {r['ranking_relative']}.", ""]
    if "ranking_vitb_scale" in r:
        lines += [f"At ViT-B/16's token scale (embedding scale c = {r['vitb_scale']:.2f}, per-element RMS "
                  f"{r['token_rms_vitb']}): {r['ranking_vitb_scale']}.", ""]
    if "uniform_attn_distance" in r:
        lines += [f"Uniform attention would give an attention distance of {r['uniform_attn_distance']:.2f} patches.", ""]
    if gap:
        lines += [f"Linear probe on `{gap['data']}` (test accuracy): {100 * gap['pretrained']:.1f} % with these weights, "
                  f"{100 * gap['random']:.1f} % with the same architecture at random initialisation.", ""]
    return lines


def _search_markdown(rows: list[dict[str, Any]]) -> list[str]:
    """The card's "Recipe search" section (``card["recipe_search"]``: every recipe tried, chosen or not)."""
    if not rows:
        return []
    lines = [
        "## Recipe search",
        "",
        "Every recipe tried for this model, with the regime each reached (columns as in \"Regime\"); the chosen one "
        "is marked. The choice rule does not look at the plasticity ranking: most targets met, then the token RMS "
        "closest to its target.",
        "",
        "| recipe | device, wall time | source test acc | token RMS | max rms\\|gamma - 1\\| | max middle entropy on E(x) "
        "| ranking |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        mark = (" **(chosen)**" if row.get("chosen") else "") + (f" ({row['label']})" if row.get("label") else "")
        lines.append(f"| `{row['command']}`{mark} | {row['device']}, {_duration(row['wall_seconds'])} | "
                     f"{100 * row['source_test_acc']:.2f} % | {regime_row(row['regime'])} |")
    return [*lines, ""]


def model_card_markdown(card: dict[str, Any]) -> str:
    """Human-readable model card from ``model_card.json``'s content."""
    r = card["recipe"]
    lines = [
        f"# {card['name']} (vitplast micro-ViT)",
        "",
        f"`{card['arch']}`: timm VisionTransformer, 32 px input, patch 4, width 192, depth 6, 3 heads, "
        f"{card['params']:,} parameters, stored as {card['dtype']} ({card['checkpoint_bytes'] / 1e6:.1f} MB).",
        f"Load it with `vitplast.models.load_model(\"{card['name']}\")` or `--model {card['name']}`.",
        "",
        "## Training",
        "",
        f"- data: `{card['source']}` ({card['num_classes']} classes; train/val/test "
        f"{card['splits']['train']}/{card['splits']['val']}/{card['splits']['test']} images)",
        f"- from random initialisation (seed {card['seed']}), all parameters trained for {r['steps']} steps "
        f"of batch {r['batch_size']}",
        f"- AdamW, lr {r['lr']}, weight decay {r['weight_decay']} (matrices only), {r['warmup_steps']} warmup "
        f"steps then cosine decay, gradient clipping at {r['clip']}, label smoothing {r['label_smoothing']}",
        "- augmentation: random 32 px crop of the image padded by 4 px (reflect) + horizontal flip",
        f"- checkpoint: best validation accuracy ({card['best_val_acc'] or 0:.4f} at step {card['best_step']})",
        f"- command: `{card['command']}`",
        f"- device: {card['device']}; wall time {card['wall_seconds'] / 60:.1f} min "
        f"({card['images_per_s']:.0f} images/s in training)",
        "",
        "## Result",
        "",
        f"Source test accuracy (float16 weights as shipped): **{100 * card['source_test_acc']:.2f} %** "
        f"on {card['source_test_n']} images (float32 before export: {100 * card['source_test_acc_fp32']:.2f} %).",
        "",
        f"SHA-256 of `{card['checkpoint']}`: `{card['checkpoint_sha256']}`",
        "",
        *_regime_markdown(card.get("regime"), card.get("probe_gap")),
        *_search_markdown(card.get("recipe_search", [])),
        *[f"{note}\n" for note in card.get("notes", [])],
        *_reproducing_markdown(card.get("reproductions", [])),
    ]
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.2f} h"


def _reproducing_markdown(rows: list[dict[str, Any]]) -> list[str]:
    """The card's "Reproducing" section, with a table of recorded re-creations (``card["reproductions"]``:
    ``device, command, wall_seconds, seconds_per_step, best_val_acc, best_step, source_test_acc,
    source_test_acc_fp32, agreement`` each)."""
    lines = [
        "## Reproducing",
        "",
        "Run the command above (with `--device cpu` on a laptop). Initialisation, data order and augmentation "
        "depend only on the seed, so two runs on one device give bitwise-identical weights "
        "(`tests/test_train_cli.py`); on another device the floating-point results differ, so the weights differ "
        "too. `tests/test_micro_checkpoint.py` checks that the shipped file loads offline and scores its recorded "
        "accuracy.",
        "",
    ]
    if not rows:
        return [*lines, "No re-creation on another device has been recorded yet.", ""]
    lines += [
        "Recorded re-creations (same command and seed; *agreement* = share of the source test images on which "
        "the re-created model predicts the same class as the shipped one):",
        "",
        "| device | command | wall time | s / step | best val acc (step) | source test acc fp16 (fp32) | agreement |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['device']} | `{r['command']}` | {_duration(r['wall_seconds'])} | {r['seconds_per_step']:.3g} | "
            f"{100 * r['best_val_acc']:.2f} % ({r['best_step']}) | {100 * r['source_test_acc']:.2f} % "
            f"({100 * r['source_test_acc_fp32']:.2f} %) | {100 * r['agreement']:.1f} % |"
        )
    return [*lines, ""]
