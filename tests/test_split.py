"""One train / validation / test split of the data (nst.data.split): studies select on
validation, the methods comparison reports test, and no test image reaches either."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import SPEC, make_images

from nst import NstError
from nst.cli import main
from nst.data.split import select, split_data
from nst.study.objective import StudyOptions
from nst.study.pairs import choose_pairs
from nst.study.runner import run_study
from nst.study.spec import load_experiment
from nst.study.training import choose_train_data

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"

pytestmark = pytest.mark.usefixtures("one_thread_module")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    make_images(root / "content", 9, seed=0)
    make_images(root / "style", 12, seed=1, stripes=True)
    return root


def names(paths: list[Path]) -> set[str]:
    return {p.name for p in paths}


def test_the_split_is_seeded_disjoint_and_follows_the_bytes_not_the_names(
    data: Path, tmp_path: Path
) -> None:
    split = split_data(data)
    for kind, n, test in (("content", 9, 3), ("style", 12, 3)):
        parts = split.kind(kind)
        assert (len(parts.train), len(parts.validation), len(parts.test)) == (
            n - 2 * test,
            test,
            test,
        )
        every = parts.train + parts.validation + parts.test
        assert len(set(every)) == n  # disjoint, and covering the data
    assert split_data(data) == split  # deterministic
    assert split_data(data, seed=1).content.test != split.content.test  # the seed matters
    # renamed files keep their parts: the order is by content hash
    renamed = tmp_path / "renamed"
    for kind in ("content", "style"):
        (renamed / kind).mkdir(parents=True)
        for p in sorted((data / kind).iterdir()):
            shutil.copy(p, renamed / kind / f"z_{p.name}")
    again = split_data(renamed)
    assert names(again.content.test) == {f"z_{p.name}" for p in split.content.test}
    facts = split.facts()
    assert facts["seed"] == 0 and facts["counts"]["style"] == {
        "train": 6,
        "validation": 3,
        "test": 3,
    }
    hashes = {i["name"]: i["sha256"] for i in facts["images"]["content"]["test"]}
    assert set(hashes) == names(split.content.test) and all(len(h) == 64 for h in hashes.values())


def test_no_test_photo_or_style_is_seen_by_training_validation_or_a_study(
    data: Path, tmp_path: Path
) -> None:
    split = split_data(data)
    test_photos, test_styles = names(split.content.test), names(split.style.test)
    # an optimisation study draws its pairs from the validation part
    spec = load_experiment(EXPERIMENTS / "loss_weights.yaml").with_profile("smoke")
    spec = spec.__class__(**{**spec.__dict__, "pairs": {"count": 50, "seed": 0}})
    pairs = choose_pairs(spec, data, tmp_path / "cache")
    assert {p.content.name for p in pairs} == names(split.content.validation)
    assert {p.style.name for p in pairs} == names(split.style.validation)
    # a training study trains on the train part and validates on the validation part
    for experiment in ("train_johnson", "train_stytr"):
        study = load_experiment(EXPERIMENTS / f"{experiment}.yaml").with_profile("smoke")
        train = choose_train_data(study, data, tmp_path / experiment, tmp_path / "cache")
        photos = {p.resolve().name for p in train.train.iterdir()}
        photos |= {pair.content.name for pair in train.pairs}
        style = train.style
        styles = {p.resolve().name for p in style.iterdir()} if style.is_dir() else {style.name}
        styles |= {pair.style.name for pair in train.pairs}
        assert photos and styles and not photos & test_photos and not styles & test_styles
        assert {pair.content.name for pair in train.pairs} <= names(split.content.validation)
        assert {pair.style.name for pair in train.pairs} <= names(split.style.validation)
    # the methods comparison evaluates test pairs and trains on train + validation (the refit
    # once the studies selected), never on a test photo or style
    chosen = select(data, "test", 2, 2, tmp_path / "methods", "the comparison")
    assert names(chosen.contents) <= names(split.content.test)
    assert names(chosen.styles) <= names(split.style.test)
    trained = {p.resolve().name for p in chosen.train.iterdir()}
    trained_styles = {p.resolve().name for p in chosen.train_styles.iterdir()}
    assert trained == names(split.content.train) | names(split.content.validation)
    assert trained_styles == names(split.style.train) | names(split.style.validation)
    assert not trained & test_photos and not trained_styles & test_styles
    assert chosen.facts["trained_on"] == ["train", "validation"]


def test_a_split_too_small_for_the_data_is_one_line(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the quick profile evaluates 2 x 2 test pairs: 3 photos give a test part of 1
    small = tmp_path / "small"
    make_images(small / "content", 3, seed=0)
    make_images(small / "style", 12, seed=1, stripes=True)
    out = tmp_path / "results"
    code = main(
        [
            "methods",
            str(SPEC),
            "--profile",
            "quick",
            "--data",
            str(small),
            "--out",
            str(out),
            "--step",
            "evaluate",
            "--quiet",
            "--no-track",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "Traceback" not in err
    assert "3 photos, whose test split holds 1, but the quick profile" in err
    assert "fetch at least 6 (data.content in params.yaml" in err
    # fewer than 3 images of a kind cannot be split at all
    for p in sorted((small / "content").iterdir())[1:]:
        p.unlink()
    with pytest.raises(
        NstError,
        match=r"1 photos; a train / validation / test split needs at "
        r"least 3: fetch more \(data.content",
    ):
        split_data(small)
    # a study says it too, before any trial
    spec = load_experiment(EXPERIMENTS / "train_johnson.yaml").with_profile("smoke")
    with pytest.raises(NstError, match="needs at least 3"):
        run_study(
            spec,
            StudyOptions(
                out=tmp_path / "r",
                storage=f"sqlite:///{tmp_path / 'o.db'}",
                track=False,
                data=small,
            ),
        )
    assert json.dumps(split_data(data).facts())  # the record is JSON
