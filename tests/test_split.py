"""Stable seeded split, perceptual hashing and duplicate grouping."""

from __future__ import annotations

import io
import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import scene
from sketch2anime.data.manifest import read_manifest
from sketch2anime.data.prepare import PrepareConfig, prepare_dataset
from sketch2anime.data.split import assign_splits, group_near_duplicates, hamming, phash, split_of




def reencoded(image: Image.Image, side: int, quality: int = 75) -> Image.Image:
    buffer = io.BytesIO()
    image.resize((side, side), Image.Resampling.BILINEAR).save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def test_phash_survives_reencoding_but_separates_pictures() -> None:
    original = scene(96, 0)
    assert hamming(phash(original), phash(reencoded(original, 70))) <= 2
    assert phash(original) == phash(np.asarray(original))  # PIL and array inputs agree
    hashes = [phash(scene(96, i)) for i in range(12)]
    assert min(hamming(a, b) for a, b in itertools.combinations(hashes, 2)) > 6
    assert all(0 <= h < 2**64 for h in hashes)


def brute_force_groups(hashes: list[int], threshold: int) -> list[set[int]]:
    parent = list(range(len(hashes)))

    def find(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i, j in itertools.combinations(range(len(hashes)), 2):
        if hamming(hashes[i], hashes[j]) <= threshold:
            parent[find(j)] = find(i)
    groups: dict[int, set[int]] = {}
    for i in range(len(hashes)):
        groups.setdefault(find(i), set()).add(i)
    return sorted(groups.values(), key=min)


@pytest.mark.parametrize("threshold", [0, 3, 6])
def test_multi_index_grouping_equals_brute_force(threshold: int) -> None:
    rng = np.random.default_rng(threshold)
    base = [int(v) for v in rng.integers(0, 2**63, 60, dtype=np.int64)]
    hashes = list(base)
    for h in base[:30]:  # planted near duplicates at 0..8 flipped bits, some chained
        flips = rng.choice(64, size=int(rng.integers(0, 9)), replace=False)
        hashes.append(h ^ sum(1 << int(b) for b in flips))
    hashes.append(hashes[-1] ^ 0b111)  # a chain: near the last planted one
    labels = group_near_duplicates(hashes, threshold)
    groups: dict[int, set[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(label, set()).add(i)
        assert label == min(j for j, other in enumerate(labels) if other == label)
    assert sorted(groups.values(), key=min) == brute_force_groups(hashes, threshold)


def test_grouping_is_fast_for_fifteen_thousand_hashes() -> None:
    import time

    hashes = [int(v) for v in np.random.default_rng(0).integers(0, 2**63, 15000, dtype=np.int64)]
    start = time.perf_counter()
    labels = group_near_duplicates(hashes, 4)
    assert time.perf_counter() - start < 5.0
    assert len(set(labels)) == 15000


def test_split_of_is_seeded_stable_and_fair() -> None:
    keys = [f"{i:064x}" for i in range(5000)]
    first = [split_of(k, 0, 0.1) for k in keys]
    assert first == [split_of(k, 0, 0.1) for k in keys]
    assert 0.08 < first.count("val") / len(keys) < 0.12
    other_seed = [split_of(k, 1, 0.1) for k in keys]
    assert other_seed != first
    assert all(split_of(k, 0, 0.0) == "train" for k in keys[:50])
    with pytest.raises(ValueError):
        split_of("x", 0, 1.5)


def test_assign_splits_keeps_groups_together() -> None:
    shas = [f"{i:02x}" * 32 for i in range(40)]
    hashes = [i * 0x0101010101010101 for i in range(20)] * 2  # pairs i, i+20 identical
    for seed in range(3):
        splits, labels = assign_splits(shas, hashes, seed, 0.5)
        for i in range(20):
            assert labels[i] == labels[i + 20] and splits[i] == splits[i + 20]
        assert {"train", "val"} == set(splits)


def write_scenes(folder: Path, indices) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in indices:
        scene(96, i).save(folder / f"s{i:03d}.png")


def config(**kwargs) -> PrepareConfig:
    defaults = dict(extractors=("detail",), workers=1, batch_size=8, val_fraction=0.4)
    defaults.update(kwargs)
    return PrepareConfig(**defaults)


def test_adding_and_removing_images_never_moves_the_others(tmp_path: Path) -> None:
    write_scenes(tmp_path / "a", range(0, 16))
    prepare_dataset(tmp_path / "a", tmp_path / "out_a", config(), progress=False)
    before = {r.id: r.split for r in read_manifest(tmp_path / "out_a")}
    assert set(before.values()) == {"train", "val"}

    # A different collection: four images gone, six new ones.
    write_scenes(tmp_path / "b", range(4, 22))
    prepare_dataset(tmp_path / "b", tmp_path / "out_b", config(), progress=False)
    after = {r.id: r.split for r in read_manifest(tmp_path / "out_b")}
    common = set(before) & set(after)
    assert len(common) == 12
    assert all(before[i] == after[i] for i in common)

    # Growing the same output folder: nobody changes split, and the report says so.
    write_scenes(tmp_path / "a", range(16, 24))
    report = prepare_dataset(tmp_path / "a", tmp_path / "out_a", config(), progress=False)
    grown = {r.id: r.split for r in read_manifest(tmp_path / "out_a")}
    assert report.processed == 8 and report.split_changes == 0
    assert all(grown[i] == s for i, s in before.items())
    # Another seed gives another (but equally stable) split.
    other = prepare_dataset(tmp_path / "a", tmp_path / "out_seed", config(seed=7), progress=False)
    assert other.prepared == 24
    assert {r.id: r.split for r in read_manifest(tmp_path / "out_seed")} != grown


def test_duplicates_share_a_split_and_exact_copies_are_stored_once(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_scenes(src, range(10))
    (src / "zcopies").mkdir()
    shutil.copy(src / "s003.png", src / "zcopies" / "exact.png")
    reencoded(scene(96, 3), 80).save(src / "zcopies" / "smaller.jpg", quality=80)
    for seed in range(4):
        out = tmp_path / f"out{seed}"
        report = prepare_dataset(src, out, config(seed=seed, val_fraction=0.5), progress=False)
        records = {r.source: r for r in read_manifest(out)}
        assert "zcopies/exact.png" not in records and len(records) == 11
        assert report.duplicates == [{"source": "zcopies/exact.png", "duplicate_of": "s003.png",
                                      "id": records["s003.png"].id}]
        assert records["s003.png"].duplicates == ("zcopies/exact.png",)
        original, near = records["s003.png"], records["zcopies/smaller.jpg"]
        assert original.id != near.id
        assert original.group == near.group and original.split == near.split
        assert len(list((out / "color").glob("*.png"))) == 11
