"""examples/rag: folder scanning, prompt assembly, and the app against a real server on localhost."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RAG = REPO / "examples" / "rag"
sys.path.insert(0, str(RAG))  # the example's modules sit beside app.py, not in an installed package

from context import Passage, RagContext, assemble_prompt, retrieve  # noqa: E402
from library import PASSAGE_CHARS, passages, scan  # noqa: E402


def run_app(*args) -> str:
    done = subprocess.run([sys.executable, str(RAG / "app.py"), *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_passages_pack_paragraphs_up_to_the_limit_and_cut_long_ones_at_spaces():
    assert passages("one.\n\ntwo.\n\n\n") == ["one. two."]
    long = " ".join(["word"] * 300)  # 1499 characters
    parts = passages(f"short.\n\n{long}", limit=100)
    assert all(len(p) <= 100 for p in parts)
    assert " ".join(parts).split() == ["short.", *["word"] * 300]
    assert passages("   \n\n  ") == []
    assert PASSAGE_CHARS >= 100


def test_scan_reads_modality_from_bytes_and_says_why_files_are_skipped(rag_folder):
    entries, skipped = scan(rag_folder)
    by_id = {e.id: e for e in entries}
    assert by_id["media/misnamed.png"].modality == "audio"  # a WAV named .png is a sound
    assert {e.modality for e in entries} == {"text", "image", "audio", "video"}
    assert any(i.startswith("notes/") and i.endswith("#0") for i in by_id)
    assert skipped == ["data.json: not a text, image, sound or video file (suffix .json)"]


def test_prompt_numbers_passages_and_marks_generated_captions():
    ctx = RagContext("what is red?", [Passage(1, "a.txt#0", "text", 0.9, "a.txt", "a red thing"),
                                      Passage(2, "b.png", "image", 0.8, "b.png", "a red circle", captioned=True),
                                      Passage(3, "c.wav", "audio", 0.7, "c.wav", None),
                                      Passage(4, "d.mp4", "video", 0.6, "d.mp4", "", captioned=True)])
    prompt = assemble_prompt(ctx)
    assert "[1] text passage from a.txt (similarity 0.900):\n    a red thing" in prompt
    assert '[2] image from b.png (similarity 0.800), described by the model as: "a red circle"' in prompt
    assert "[3] sound from c.wav (similarity 0.700): no caption" in prompt
    assert "[4] video from d.mp4 (similarity 0.600): the model's caption had no words" in prompt
    assert prompt.rstrip().endswith("Question: what is red?\nAnswer:")


def test_tidy_keeps_one_of_each_run_of_a_repeated_word_and_drops_wordless_captions():
    from captioner import tidy

    assert tidy("big big big Big") == "big"
    assert tidy("a red red circle ,,,, moving") == "a red circle , moving"
    assert tidy(",,,,,,,,") == "" and tidy("") == ""


def test_app_indexes_the_folder_and_retrieves_every_modality_through_the_server(tiny_bundle, rag_folder, serve):
    from omniembed.serve import Client

    target = serve(tiny_bundle)
    out = run_app("--server", target, "index", str(rag_folder))
    entries, _ = scan(rag_folder)
    assert f"indexed {len(entries)} entries" in out and "skipped data.json" in out
    # indexing again replaces by id: the count does not grow
    assert f"{len(entries)} in the index" in run_app("--server", target, "index", str(rag_folder))

    note = next(e for e in entries if e.modality == "text")
    with Client(target) as client:
        ctx = retrieve(client, note.text, per_modality=2)
    assert sorted(p.modality for p in ctx.passages) == ["audio", "audio", "image", "image", "text", "text",
                                                        "video", "video"]
    assert [p.rank for p in ctx.passages] == list(range(1, 9))
    assert [p.score for p in ctx.passages] == sorted((p.score for p in ctx.passages), reverse=True)
    top_text = next(p for p in ctx.passages if p.modality == "text")
    assert top_text.id == note.id and top_text.score == pytest.approx(1.0, abs=1e-3)  # the passage itself
    assert top_text.text == note.text
    media = [p for p in ctx.passages if p.modality != "text"]
    assert all(p.text is None and not p.captioned for p in media)  # no --run: no captions
    assert all((rag_folder / p.source).is_file() for p in ctx.passages)
    assert f"Question: {note.text}" in ctx.prompt

    # the CLI: --json gives the same structure; an image attached to the question makes an interleaved query
    image = next(e for e in entries if e.modality == "image")
    data = json.loads(run_app("--server", target, "ask", "what is this?", "--with", str(image.path),
                              "--modalities", "image", "--per-modality", "1", "--json"))
    assert data["question"] == "what is this?" and len(data["passages"]) == 1
    assert data["passages"][0]["modality"] == "image"


@pytest.mark.slow
def test_ask_captions_retrieved_media_with_the_trained_runs_next_token_head(tiny_run, rag_folder, serve,
                                                                           tmp_path):
    import torch

    from omniembed.export import export_run

    torch.set_num_threads(2)
    bundle = export_run(tiny_run, tmp_path / "bundle", verify=False)
    target = serve(bundle)
    run_app("--server", target, "index", str(rag_folder))
    out = run_app("--server", target, "ask", "a big red circle", "--run", str(tiny_run), "--per-modality", "1")
    assert "Question: a big red circle" in out
    assert "media captions: the embedding model's own next-token head" in out
    for kind in ("image", "sound", "video"):
        line = next(x for x in out.splitlines() if f"] {kind} from media/" in x)
        # a 12-step model may say nothing worth keeping; either way the line says the caption is the model's
        assert "described by the model as:" in line or "the model's caption had no words" in line
    data = json.loads(run_app("--server", target, "ask", "a big red circle", "--run", str(tiny_run),
                              "--per-modality", "1", "--json"))
    media = [p for p in data["passages"] if p["modality"] != "text"]
    assert len(media) == 3 and all(p["captioned"] and isinstance(p["text"], str) for p in media)
