"""The synthetic world generator: determinism, the held-out split, real media of the right shape, text."""

import hashlib
import json

import numpy as np
import pytest

from omniembed.cli import main as cli_main
from omniembed.data.synth import captions as cap
from omniembed.data.synth import world as W
from omniembed.data.manifest import Document, Item, load_manifest
from omniembed.data.synth import generate, load_world
from omniembed.data.synth.cli import main
from omniembed.media import SAMPLE_RATE, decode_audio, decode_image, decode_video


def _tree_digest(root) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_worlds_whatever_the_worker_count(tmp_path):
    a = generate(tmp_path / "a", 10, seed=3, workers=1)
    b = generate(tmp_path / "b", 10, seed=3, workers=2)
    assert _tree_digest(a) == _tree_digest(b)
    assert any(name.endswith(".mp4") for name in _tree_digest(a))


def test_regenerating_into_the_same_folder_leaves_no_stale_media(tmp_path):
    generate(tmp_path, 4, seed=1, heldout_frac=0.0)
    (tmp_path / "media" / "notes.txt").write_text("the user's own file")
    world = load_world(generate(tmp_path, 2, seed=1, heldout_frac=0.0, video_format="none"))
    named = {m.source for it in world.items for m in it.media.values()}
    assert {str(p) for p in (tmp_path / "media").glob("item-*")} == named
    assert (tmp_path / "media" / "notes.txt").exists()


def test_different_seeds_give_different_worlds(tmp_path):
    a = load_world(generate(tmp_path / "a", 8, seed=1, video_format="none"))
    b = load_world(generate(tmp_path / "b", 8, seed=2, video_format="none"))
    assert [r.attributes for r in a.items] != [r.attributes for r in b.items]
    assert a.world["heldout_combinations"] != b.world["heldout_combinations"]


def test_heldout_items_use_only_heldout_combinations_and_train_never_does(synth_world):
    heldout = {tuple(sorted(c.items())) for c in synth_world.world["heldout_combinations"]}
    train_items = [r for r in synth_world.train if isinstance(r, Item)]
    heldout_items = [r for r in synth_world.heldout if isinstance(r, Item)]
    assert heldout_items and train_items
    assert all(tuple(sorted(r.attributes.items())) in heldout for r in heldout_items)
    assert not any(tuple(sorted(r.attributes.items())) in heldout for r in train_items)
    assert {r.split for r in synth_world.train} == {"train"}
    assert {r.split for r in synth_world.heldout} == {"heldout"}


def test_every_attribute_value_appears_in_the_training_manifest(synth_world):
    train_items = [r for r in synth_world.train if isinstance(r, Item)]
    for name, values in W.ATTRIBUTES.items():
        assert {r.attributes[name] for r in train_items} == set(values), name


def test_world_json_describes_the_vocabulary_and_counts(synth_world):
    w = synth_world.world
    assert w["attributes"] == {k: list(v) for k, v in W.ATTRIBUTES.items()}
    assert w["combinations"]["train"] + w["combinations"]["heldout"] == w["combinations"]["total"] == 432
    assert w["counts"]["train_items"] + w["counts"]["heldout_items"] == 48
    assert w["counts"]["heldout_items"] == 6
    assert len(synth_world.train) == w["counts"]["train_items"] + w["counts"]["train_documents"]


def test_media_decode_with_the_configured_sizes_and_durations(synth_world):
    for item in synth_world.items[:6]:
        assert decode_image(item.media["image"].source).shape == (64, 64, 3)
        wave = decode_audio(item.media["audio"].source)
        assert wave.dtype == np.float32 and len(wave) == 2 * SAMPLE_RATE
        assert 0.2 < np.abs(wave).max() <= 1.0
        video = decode_video(item.media["video"].source, fps=8)
        assert video.frames.shape == (16, 64, 64, 3)
        assert video.duration == pytest.approx(2.0, abs=0.15)
        # the soundtrack is the item's sound (AAC adds codec delay and padding, so compare loosely)
        assert video.audio is not None and abs(len(video.audio) - len(wave)) < 0.1 * SAMPLE_RATE


def test_webm_videos_are_written_when_asked(tmp_path):
    world = load_world(generate(tmp_path, 2, seed=0, video_format="webm", heldout_frac=0.0))
    video = decode_video(world.items[0].media["video"].source, fps=8)
    assert world.items[0].media["video"].source.endswith(".webm")
    assert video.frames.shape == (16, 64, 64, 3) and video.audio is not None


def test_image_size_option_sets_image_and_video_frame_size(tmp_path):
    world = load_world(generate(tmp_path, 1, seed=0, image_size=32, heldout_frac=0.0))
    assert decode_image(world.items[0].media["image"].source).shape == (32, 32, 3)
    assert decode_video(world.items[0].media["video"].source, fps=8).frames.shape[1:] == (32, 32, 3)


def _words_for(attrs: dict[str, str]) -> list[tuple[str, ...]]:
    return [cap.SHAPE_NOUNS[attrs["shape"]], cap.COLOUR_WORDS[attrs["colour"]], cap.SIZE_WORDS[attrs["size"]],
            cap.POSITION_PHRASES[attrs["position"]] + cap.POSITION_LABELS[attrs["position"]],
            cap.MOTION_PHRASES[attrs["motion"]] + cap.MOTION_LABELS[attrs["motion"]]]


def test_captions_are_distinct_paraphrases_naming_every_attribute_and_no_other_value(synth_world):
    all_colours = {w for words in cap.COLOUR_WORDS.values() for w in words}
    templates_seen = set()
    for item in synth_world.items:
        assert len(item.texts) == 4 and len(set(item.texts)) == 4
        own_colours = set(cap.COLOUR_WORDS[item.attributes["colour"]])
        for text in item.texts:
            for options in _words_for(item.attributes):
                assert any(o in text for o in options), (text, options)
            assert not [c for c in all_colours - own_colours if f" {c} " in f" {text.replace(',', ' ')} "], text
            templates_seen.add(text.split()[0])
    assert len(templates_seen) >= 4  # word order varies, not only the synonyms


def test_documents_interleave_text_with_media_of_items_from_their_own_split(synth_world):
    for records in (synth_world.train, synth_world.heldout):
        items = {r.id: r for r in records if isinstance(r, Item)}
        sources = {m.source for it in items.values() for m in it.media.values()}
        docs = [r for r in records if isinstance(r, Document)]
        assert docs
        for doc in docs:
            kinds = [s.modality for s in doc.segments]
            assert kinds[0] == "text" and any(k != "text" for k in kinds)
            assert all(s.media.source in sources for s in doc.segments if s.media is not None)
            assert set(doc.meta["items"]) <= set(items)


def test_cli_writes_a_world_that_the_loader_accepts(tmp_path, capsys):
    assert cli_main(["synth", "--out", str(tmp_path), "--n", "4", "--seed", "5", "--no-video"]) == 0
    assert "wrote" in capsys.readouterr().out
    records = load_manifest(tmp_path / "manifest.jsonl", check_media=True)
    assert sum(isinstance(r, Item) for r in records) == 4 - round(4 * 0.125)
    assert json.loads((tmp_path / "world.json").read_text())["config"]["seed"] == 5


def test_load_world_names_a_folder_that_holds_no_world(tmp_path):
    from omniembed.errors import ManifestError

    with pytest.raises(ManifestError, match="world.json: not a readable synthetic world"):
        load_world(tmp_path)


def test_cli_rejects_a_bad_count_with_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--out", str(tmp_path), "--n", "0"])
    assert exc.value.code == 2
    assert "n must be at least 1" in capsys.readouterr().err
