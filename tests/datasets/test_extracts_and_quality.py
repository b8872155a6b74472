"""Extracts, instruction forms and the quality steps, on small hand-made documents."""

from __future__ import annotations

from twin_core.datasets import quality
from twin_core.datasets.extracts import cut
from twin_core.datasets.instructions import write_instruction
from twin_core.domain.documents import Category
from twin_core.domain.features import CleanedDocument

PARA = ("Sourdough needs patience and a warm kitchen. " * 6).strip()  # ~270 characters


def _doc(content: str, category: Category = Category.ARTICLES, doc_id: str = "d1") -> CleanedDocument:
    return CleanedDocument(
        id=doc_id,
        content=content,
        raw_content_hash="h",
        category=category,
        platform="blog",
        link=f"https://example.org/{doc_id}",
        author_id="a",
        author_full_name="Ada Quillfeather",
    )


def test_prose_is_cut_on_paragraph_boundaries_into_verbatim_slices() -> None:
    paragraphs = [f"Paragraph {i}. " + PARA for i in range(12)]
    doc = _doc("\n\n".join(paragraphs))
    extracts = cut(doc)
    assert len(extracts) == 2
    for ex in extracts:
        assert ex.text in doc.content  # a contiguous slice, never re-flowed
        assert 1000 <= len(ex.text) <= 2000
        assert ex.text.startswith("Paragraph ")  # starts on a paragraph boundary
    assert "\n\n".join(ex.text for ex in extracts) == doc.content


def test_code_is_cut_on_top_level_definitions_with_lines_kept() -> None:
    funcs = [
        f"def f{i}(x):\n    total = x\n    for k in range(3):\n        total += k * {i}\n    return total\n"
        for i in range(40)
    ]
    doc = _doc("# pkg/mod.py\n" + "\n".join(funcs), Category.REPOSITORIES)
    extracts = cut(doc)
    assert len(extracts) >= 2
    for ex in extracts:
        assert ex.is_code
        assert ex.heading == "pkg/mod.py"
        assert ex.text.startswith("def f")
        assert ex.text in doc.content
        assert "\n        total += k" in ex.text  # indentation untouched


def test_instructions_are_deterministic_for_a_seed_and_vary_in_form() -> None:
    docs = [_doc(f"Title {i}\n\n" + f"Topic{i} matters for bread baking. " * 40, doc_id=f"d{i}") for i in range(30)]
    extracts = [e for d in docs for e in cut(d)]
    first = [write_instruction(e, seed=7) for e in extracts]
    again = [write_instruction(e, seed=7) for e in extracts]
    other = [write_instruction(e, seed=8) for e in extracts]
    assert first == again
    assert first != other
    assert len({form for form, _ in first}) >= 4


def test_decontamination_drops_train_rows_overlapping_the_test_split() -> None:
    shared = "the quick brown fox jumps over the lazy dog near the river bank"
    rows = [
        {"id": "t", "document_id": "a", "split": "test", "instruction": "q1", "answer": f"Intro. {shared}."},
        {"id": "x", "document_id": "b", "split": "train", "instruction": "q2", "answer": f"Quote: {shared}!"},
        {"id": "y", "document_id": "c", "split": "train", "instruction": "q3", "answer": "Something else entirely."},
    ]
    kept, removed = quality.decontaminate(rows, text_keys=("instruction", "answer"), n=8)
    assert [r["id"] for r in kept] == ["t", "y"]
    assert removed == {"contaminated": 1}


def test_duplicates_and_filters_report_what_they_removed() -> None:
    base = "Fermentation is a slow conversation between flour, water and time. " * 3
    rows = [
        {"id": "1", "answer": base, "category": "articles"},
        {"id": "2", "answer": base.upper(), "category": "articles"},  # exact after normalisation
        {"id": "3", "answer": base + " Indeed.", "category": "articles"},  # near duplicate
        {"id": "4", "answer": "Too short.", "category": "articles"},
        {"id": "5", "answer": "Subscribe to my newsletter! Click here. Buy me a coffee. " * 3, "category": "posts"},
    ]
    kept, removed = quality.filter_rows(rows, text_key="answer", min_chars=100, max_chars=4000, language="en")
    assert removed == {"too_short": 1, "boilerplate": 1}
    kept, removed = quality.deduplicate(kept, text_key="answer", jaccard=0.8)
    assert [r["id"] for r in kept] == ["1"]
    assert removed == {"exact_duplicate": 1, "near_duplicate": 1}


def test_decontamination_ignores_lines_recurring_across_documents() -> None:
    footer = "Thanks for reading my weekly newsletter about data pipelines and other small disasters"
    docs = [f"Post {i} body about topic {i}.\n{footer}" for i in range(4)]
    boilerplate = quality.recurring_lines(docs, min_documents=3)
    assert boilerplate == {quality._norm(footer)}
    rows = [
        {"id": "t", "split": "test", "instruction": "q1", "answer": f"Held-out text on soup.\n{footer}"},
        {"id": "x", "split": "train", "instruction": "q2", "answer": f"Training text on bread.\n{footer}"},
    ]
    kept, removed = quality.decontaminate(rows, text_keys=("instruction", "answer"), n=8)
    assert [r["id"] for r in kept] == ["t"] and removed == {"contaminated": 1}  # the footer alone matched
    kept, removed = quality.decontaminate(rows, text_keys=("instruction", "answer"), n=8, ignore_lines=boilerplate)
    assert [r["id"] for r in kept] == ["t", "x"] and not removed
