"""Accumulating the scores of one ``metrics.json`` entry (model x set x condition x hints x projection)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .color import hint_adherence
from .eval_model import Batch, upscale_for_display
from .lines import line_fidelity
from .sensitivity import input_sensitivity, small_images
from .ssim import l1, psnr, ssim

PSNR_CAP_DB = 100.0  # identical images have infinite PSNR; capped so means stay finite

DELTA_KEYS = ("ssim_mean", "psnr_mean", "l1_mean", "fid", "kid_mean", "hint_de00_median", "hint_de00_p90",
              "line_recall", "line_f", "line_chamfer", "line_recall_input", "line_f_input", "ssim_display_mean",
              "sensitivity", "projection_change")
PER_IMAGE_KEYS = ("ssim", "psnr", "l1", "line_recall", "line_f", "line_chamfer", "hint_de00_median", "ssim_display")


def display_scores(native: torch.Tensor, target: torch.Tensor) -> dict[str, np.ndarray]:
    """Per-image SSIM / PSNR / L1 of ``native`` (B, 3, s, s) shown at the side of ``target``
    (B, 3, D, D), upscaled bicubically as a viewer would."""
    shown = upscale_for_display(native, target.shape[-1])
    return {"ssim": ssim(shown, target).numpy(), "psnr": np.minimum(psnr(shown, target).numpy(), PSNR_CAP_DB),
            "l1": l1(shown, target).numpy()}


class EntryScores:
    """Per-sample metrics of one entry over all batches."""

    def __init__(self, hint_size: int, with_hints: bool, with_features: bool) -> None:
        self.hint_size, self.with_hints, self.with_features = hint_size, with_hints, with_features
        self.values: dict[str, list[np.ndarray]] = {}
        self.small: list[torch.Tensor] = []
        self.hints: list[torch.Tensor] = []
        self.features: list[np.ndarray] = []
        self.sensitivity_rows: list[torch.Tensor] = []
        self.seconds = 0.0

    def _add(self, key: str, values: Any) -> None:
        self.values.setdefault(key, []).append(np.asarray(values, dtype=np.float64).reshape(-1))

    def add(self, output: torch.Tensor, batch: Batch, clean_sketch: torch.Tensor, hint: torch.Tensor,
            features: Any, display: dict[str, np.ndarray] | None = None) -> None:
        """``output`` (B, 3, S, S) at the dataset size; ``features``: its FID features (N, D) numpy or
        None; ``display``: per-image scores at the display size (``display_scores``) or None."""
        target = batch.target
        self._add("ssim", ssim(output, target).numpy())
        self._add("psnr", np.minimum(psnr(output, target).numpy(), PSNR_CAP_DB))
        self._add("l1", l1(output, target).numpy())
        vs_clean = line_fidelity(clean_sketch, output)
        for key in ("recall", "precision", "f", "chamfer"):
            self._add(f"line_{key}", vs_clean[f"per_sample_{key}"])
        vs_input = vs_clean if batch.sketch is clean_sketch else line_fidelity(batch.sketch, output)
        for key in ("recall", "f", "chamfer"):
            self._add(f"line_{key}_input", vs_input[f"per_sample_{key}"])
        for key, values in (display or {}).items():
            self._add(f"{key}_display", values)
        self.sensitivity_rows.append(small_images(output))
        if self.with_hints:
            self.small.append(F.interpolate(output.double(), size=(self.hint_size, self.hint_size), mode="area"))
            self.hints.append(hint)
        if self.with_features and features is not None:
            self.features.append(features)

    def small_outputs(self) -> torch.Tensor:
        """``small_images`` rows of every output so far, in order."""
        return torch.cat(self.sensitivity_rows)

    def per_sample(self, key: str) -> np.ndarray:
        return np.concatenate(self.values[key])

    def summary(self, real_features: np.ndarray | None, seed: int, kid_subsets: int,
                target_rows: torch.Tensor | None = None) -> dict[str, Any]:
        """``target_rows``: ``small_images`` of the targets in order, for the input sensitivity."""
        def mean(key: str) -> float | None:
            if key not in self.values:
                return None
            values = self.per_sample(key)
            values = values[np.isfinite(values)]
            return float(values.mean()) if values.size else None

        ssim_values = self.per_sample("ssim")
        metrics: dict[str, Any] = {
            "ssim_mean": float(ssim_values.mean()), "ssim_std": float(ssim_values.std()),
            "psnr_mean": mean("psnr"), "l1_mean": mean("l1"),
            "ssim_display_mean": mean("ssim_display"), "psnr_display_mean": mean("psnr_display"),
            "l1_display_mean": mean("l1_display"),
        }
        metrics.update({"sensitivity": None, "sensitivity_output_distance": None,
                        "sensitivity_target_distance": None})
        if target_rows is not None and self.sensitivity_rows:
            result = input_sensitivity(self.small_outputs(), target_rows, seed=seed)
            metrics.update({"sensitivity": result["sensitivity"],
                            "sensitivity_output_distance": result["output_distance"],
                            "sensitivity_target_distance": result["target_distance"]})
        for key in ("recall", "precision", "f", "chamfer", "recall_input", "f_input", "chamfer_input"):
            metrics[f"line_{key}"] = mean(f"line_{key}")
        metrics.update({"hint_de00_median": None, "hint_de00_p90": None, "hint_de00_mean": None, "hint_pixels": 0})
        if self.with_hints and self.small:
            adherence = hint_adherence(torch.cat(self.small), torch.cat(self.hints).double())
            metrics.update({"hint_de00_median": adherence["median"], "hint_de00_p90": adherence["p90"],
                            "hint_de00_mean": adherence["mean"], "hint_pixels": adherence["count"]})
            self._add("hint_de00_median", adherence["per_sample_median"])
        metrics.update({"fid": None, "kid_mean": None, "kid_std": None, "fid_full_rank": None})
        if self.features and real_features is not None:
            from .fid import fid_kid

            fake = np.concatenate(self.features)
            if min(len(fake), len(real_features)) >= 2:
                result = fid_kid(real_features, fake, rng=np.random.default_rng(seed), kid_subsets=kid_subsets)
                metrics.update({k: result.get(k) for k in ("fid", "kid_mean", "kid_std")})
                metrics["fid_full_rank"] = result.get("fid_full_rank", result.get("fid_reliable"))
        return metrics


def add_deltas(entries: list[dict[str, Any]]) -> None:
    """Set ``delta_vs_clean`` (rough minus clean, same set/model/hint/projection) on every rough entry."""
    def key(e: dict[str, Any]) -> tuple:
        return e.get("set", "val"), e["model"], e["hint_level"], e["projection"]

    clean = {key(e): e for e in entries if e["roughness"] == "none"}
    for entry in entries:
        if entry["roughness"] == "none":
            entry["delta_vs_clean"] = None
            continue
        base = clean.get(key(entry))
        if base is None:
            entry["delta_vs_clean"] = None
            continue
        entry["delta_vs_clean"] = {
            k: (entry["metrics"][k] - base["metrics"][k]
                if entry["metrics"].get(k) is not None and base["metrics"].get(k) is not None else None)
            for k in DELTA_KEYS}


def entry_label(entry: dict[str, Any]) -> str:
    """"model" or "model p=0.5": how tables name one model at one projection strength."""
    return entry["model"] if entry["projection"] is None else f"{entry['model']} p={entry['projection']:g}"


def add_fid_differences(entries: list[dict[str, Any]], features: dict[int, np.ndarray], real: np.ndarray,
                        draws: int, seed: int) -> None:
    """Set ``metrics["fid_vs_first"]`` on every entry with FID features (``features[id(entry)]``, (N, D),
    rows in the order of ``real``) but the first of its set, condition and hint level: that entry's
    FID minus the first's with a 90% paired bootstrap interval over the images
    (``fid.paired_fid_difference``, the same rows for every entry through one seed). 150 images
    give FIDs that move by points between draws of the inputs, so a gap is read with its interval."""
    from .fid import paired_fid_difference

    first: dict[tuple, dict[str, Any]] = {}
    for entry in entries:
        entry["metrics"].setdefault("fid_vs_first", None)
        if id(entry) not in features:
            continue
        key = entry.get("set", "val"), entry["roughness"], entry["hint_level"]
        reference = first.setdefault(key, entry)
        if reference is entry:
            continue
        gap = paired_fid_difference(real, features[id(reference)], features[id(entry)], draws=draws, rng=seed)
        entry["metrics"]["fid_vs_first"] = {"reference": entry_label(reference), **gap}
