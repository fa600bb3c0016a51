"""stvg_lab.answer: round trips, every parser error code on a literal answer, the prompt.

The property tests feed ``parse_answer`` arbitrary text and text assembled from the
grammar's own pieces (tags, digits, brackets, commas), so that they reach the box parser
and not only the first tag check.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stvg_lab.answer import (
    ERROR_CODES,
    AnswerFormat,
    FORMATS,
    MAX_ANSWER_CHARS,
    ParsedAnswer,
    PromptSpec,
    build_prompt,
    format_answer,
    get_format,
    parse_answer,
    without_think,
)

PRED = {3: [10, 20, 50, 80], 4: [12, 21, 52, 81], 5: [14, 22, 54, 82]}
THINK = {3: [8, 18, 50, 82], 4: [10, 19, 52, 83], 5: [12, 20, 54, 84]}

# the paper's layout, written out once by hand so the serializer is checked against text
PAPER_TEXT = (
    "<time> 3 - 5 </time> <think_bbox> 3. [8,18,50,82], 4. [10,19,52,83], 5. [12,20,54,84] </think_bbox> "
    "<pred_bbox> 3. [10,20,50,80], 4. [12,21,52,81], 5. [14,22,54,82] </pred_bbox>"
)
COMPACT_TEXT = (
    "<time>3-5</time><think_bbox>[8,18,50,82][10,19,52,83][12,20,54,84]</think_bbox>"
    "<pred_bbox>[10,20,50,80][12,21,52,81][14,22,54,82]</pred_bbox>"
)


def test_paper_and_compact_text_literally():
    assert format_answer((3, 5), PRED, THINK, "paper") == PAPER_TEXT
    assert format_answer((3, 5), PRED, THINK, "compact") == COMPACT_TEXT
    # compact with the paper's frame labels
    assert format_answer((3, 5), PRED, None, "compact_labels_no_think") == (
        "<time>3-5</time><pred_bbox>3. [10,20,50,80],4. [12,21,52,81],5. [14,22,54,82]</pred_bbox>")


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_round_trip_every_format(fmt):
    f = get_format(fmt)
    parsed = parse_answer(format_answer((3, 5), PRED, THINK, fmt), fmt)
    assert parsed.ok and parsed.consistent, parsed.detail
    assert parsed.span == (3, 5)
    assert parsed.pred == {k: [float(v) for v in b] for k, b in PRED.items()}
    assert parsed.think == ({k: [float(v) for v in b] for k, b in THINK.items()} if f.think else None)
    assert parsed.format == fmt


@pytest.mark.parametrize("fmt, twin", [("paper", "no_think"), ("compact", "compact_no_think"), ("no_think", "no_think"),
                                       ("compact_no_think", "compact_no_think"), ("compact_labels", "compact_labels_no_think"),
                                       ("compact_labels_no_think", "compact_labels_no_think")])
def test_without_think_names_the_same_layout_without_think(fmt, twin):
    assert without_think(fmt) == twin


def test_without_think_needs_a_twin():
    with pytest.raises(ValueError, match="no twin"):
        without_think(AnswerFormat("odd", frame_labels=False, spaces=True))


def test_think_defaults_to_pred():
    parsed = parse_answer(format_answer((3, 5), PRED, fmt="paper"), "paper")
    assert parsed.think == parsed.pred


def test_compact_format_needs_every_frame():
    with pytest.raises(ValueError, match="one box per frame 3..5"):
        format_answer((3, 5), {3: [0, 0, 1, 1]}, fmt="compact")


def test_unknown_format_names_the_choices():
    with pytest.raises(ValueError, match="compact_no_think"):
        get_format("verbose")


OK_CASES = [
    # (id, fmt, text, span, pred frames, consistent)
    # no spaces at all in the paper format: white space is optional
    ("paper_no_spaces", "paper",
     "<time>1-1</time><think_bbox>1.[0,0,5,5]</think_bbox><pred_bbox>1.[0,0,5,5]</pred_bbox>", (1, 1), [1], True),
    # newlines and tabs between and inside the tags are ASCII white space
    ("newlines", "no_think", "<time>\n0 -\t1\n</time>\n<pred_bbox>\n0. [1, 2, 3, 4],\n1. [1,2,3,4]\n</pred_bbox>\n",
     (0, 1), [0, 1], True),
    # decimals are allowed (up to 3 places); labels may come in any order
    ("decimals_any_order", "no_think", "<time> 0 - 1 </time> <pred_bbox> 1. [1.5,2,3,4.25], 0. [0,0,1,1] </pred_bbox>",
     (0, 1), [0, 1], True),
    # a label outside the span parses but is inconsistent (Eq. 4)
    ("label_outside_span", "no_think", "<time> 2 - 2 </time> <pred_bbox> 9. [0,0,1,1] </pred_bbox>", (2, 2), [9],
     False),
    # a missing frame parses but is inconsistent
    ("missing_frame", "no_think", "<time> 2 - 3 </time> <pred_bbox> 2. [0,0,1,1] </pred_bbox>", (2, 3), [2], False),
    # compact: box k belongs to frame ts + k; too few boxes is inconsistent, not an error
    ("compact_short", "compact_no_think", "<time>4-6</time><pred_bbox>[0,0,1,1],[0,0,2,2]</pred_bbox>", (4, 6), [4, 5],
     False),
    # compact: think complete but pred one box long
    ("compact_think_ok_pred_short", "compact", "<time>0-1</time><think_bbox>[0,0,1,1][0,0,1,1]</think_bbox>"
     "<pred_bbox>[0,0,1,1]</pred_bbox>", (0, 1), [0], False),
]


@pytest.mark.parametrize("fmt, text, span, frames, consistent", [c[1:] for c in OK_CASES], ids=[c[0] for c in OK_CASES])
def test_parses(fmt, text, span, frames, consistent):
    parsed = parse_answer(text, fmt)
    assert parsed.ok, parsed.detail
    assert parsed.span == span
    assert sorted(parsed.pred) == sorted(frames)
    assert parsed.consistent is consistent


GOOD = "<time> 1 - 1 </time> <think_bbox> 1. [0,0,5,5] </think_bbox> <pred_bbox> 1. [0,0,5,5] </pred_bbox>"
ERROR_CASES = [
    # (id, fmt, text, error code)
    ("not_text_none", "paper", None, "not_text"),
    ("not_text_bytes", "paper", GOOD.encode(), "not_text"),
    ("empty", "paper", "", "empty"),
    ("blank", "paper", " \n\t ", "empty"),
    # a Unicode space is not blank: the grammar is ASCII, so this fails on the tags instead
    ("nbsp_only", "paper", "\u00a0", "missing_tag"),
    ("too_long", "paper", GOOD + " " * MAX_ANSWER_CHARS, "too_long"),
    ("missing_think", "paper", "<time> 1 - 1 </time> <pred_bbox> 1. [0,0,5,5] </pred_bbox>", "missing_tag"),
    ("missing_close", "paper", GOOD.replace("</pred_bbox>", ""), "missing_tag"),
    ("think_in_no_think", "no_think", GOOD, "unexpected_tag"),
    ("repeated_time", "paper", "<time> 1 - 1 </time>" + GOOD, "repeated_tag"),
    ("pred_before_think", "paper",
     "<time> 1 - 1 </time> <pred_bbox> 1. [0,0,5,5] </pred_bbox> <think_bbox> 1. [0,0,5,5] </think_bbox>", "tag_order"),
    ("close_before_open", "no_think", "</time> 1 - 1 <time> <pred_bbox> 1. [0,0,5,5] </pred_bbox>", "tag_order"),
    # nesting: <think_bbox> opens inside <time>
    ("nested", "paper",
     "<time> 1 - 1 <think_bbox> </time> 1. [0,0,5,5] </think_bbox> <pred_bbox> 1. [0,0,5,5] </pred_bbox>", "tag_order"),
    ("preamble", "paper", "Answer: " + GOOD, "text_outside_tags"),
    ("between_tags", "paper", GOOD.replace("</time> ", "</time> so "), "text_outside_tags"),
    ("trailing", "paper", GOOD + " done", "text_outside_tags"),
    ("span_words", "paper", GOOD.replace("1 - 1", "1 to 1"), "bad_span"),
    ("span_seconds", "paper", GOOD.replace("1 - 1", "0.5 - 1"), "bad_span"),
    ("span_single", "paper", GOOD.replace("1 - 1", "1"), "bad_span"),
    # Unicode digits: "١" is ARABIC-INDIC DIGIT ONE, \d would accept it without re.ASCII
    ("span_unicode_digit", "paper", GOOD.replace("1 - 1", "\u0661 - \u0661"), "bad_span"),
    ("reversed", "paper", GOOD.replace("1 - 1", "2 - 1"), "reversed_span"),
    ("empty_box_list", "paper", GOOD.replace("1. [0,0,5,5] </pred", "</pred"), "bad_boxes"),
    ("trailing_comma", "paper", GOOD.replace("[0,0,5,5] </pred", "[0,0,5,5], </pred"), "bad_boxes"),
    ("negative_coordinate", "paper", GOOD.replace("[0,0,5,5] </pred", "[-1,0,5,5] </pred"), "bad_boxes"),
    ("three_coordinates", "paper", GOOD.replace("[0,0,5,5] </pred", "[0,0,5] </pred"), "bad_boxes"),
    ("six_digit_coordinate", "paper", GOOD.replace("[0,0,5,5] </pred", "[0,0,5,123456] </pred"), "bad_boxes"),
    ("unlabelled_in_paper", "paper", GOOD.replace("1. [0,0,5,5] </pred", "[0,0,5,5] </pred"), "bad_boxes"),
    ("labelled_in_compact", "compact",
     "<time>1-1</time><think_bbox>1. [0,0,5,5]</think_bbox><pred_bbox>[0,0,5,5]</pred_bbox>", "bad_boxes"),
    ("missing_separator", "paper", GOOD.replace("1. [0,0,5,5] </pred", "1. [0,0,5,5] 2. [0,0,5,5] </pred"),
     "bad_boxes"),
    ("nan_coordinate", "paper", GOOD.replace("[0,0,5,5] </pred", "[nan,0,5,5] </pred"), "bad_boxes"),
    ("unicode_digit_box", "paper", GOOD.replace("[0,0,5,5] </pred", "[\u0660,0,5,5] </pred"), "bad_boxes"),
    ("duplicate_label", "paper", GOOD.replace("1. [0,0,5,5] </pred", "1. [0,0,5,5], 1. [0,0,6,6] </pred"),
     "duplicate_frame"),
]


@pytest.mark.parametrize("fmt, text, code", [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_error_codes(fmt, text, code):
    parsed = parse_answer(text, fmt)
    assert parsed.error == code, parsed.detail
    assert not parsed.ok and not parsed.consistent
    assert parsed.span is None and parsed.pred is None and parsed.think is None
    assert parsed.detail


def test_every_error_code_is_covered():
    assert {c[3] for c in ERROR_CASES} == set(ERROR_CODES)


def test_good_answer_parses():
    # the base of the error cases is itself valid, so each case fails for its own reason
    assert parse_answer(GOOD, "paper").ok


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_prompt_mentions_frames_size_and_format(fmt):
    prompt = build_prompt("  the man in red  ", PromptSpec(num_frames=24, width=336, height=196), fmt)
    assert "24 frames" in prompt and "numbered 0 to 23" in prompt
    assert "336x196 pixels" in prompt
    assert '"the man in red"' in prompt
    assert ("<think_bbox>" in prompt) is get_format(fmt).think
    # the example in the prompt is itself a valid, consistent answer of the format
    example = prompt.split("Example of the format: ")[1]
    parsed = parse_answer(example, fmt)
    assert parsed.ok and parsed.consistent


PIECES = [
    "<time>", "</time>", "<think_bbox>", "</think_bbox>", "<pred_bbox>", "</pred_bbox>",
    " ", "\n", "-", ",", ".", "[", "]", "0", "3", "7", "12", "335", "99999", "1.5", "3. ", "[1,2,3,4]", "x",
]
grammar_text = st.lists(st.sampled_from(PIECES), max_size=60).map("".join)
any_text = st.one_of(st.text(max_size=300), grammar_text)


@given(text=any_text, fmt=st.sampled_from(sorted(FORMATS)))
def test_parse_never_raises(text, fmt):
    parsed = parse_answer(text, fmt)
    assert isinstance(parsed, ParsedAnswer)
    assert parsed.ok is (parsed.error is None)
    if parsed.ok:
        assert parsed.span[0] <= parsed.span[1]
        assert parsed.pred  # a parsed box list is never empty
        assert (parsed.think is not None) is get_format(fmt).think
        assert all(len(b) == 4 and all(0 <= v < 100_000 for v in b) for b in parsed.pred.values())
    else:
        assert parsed.error in ERROR_CODES


@st.composite
def answers(draw):
    fmt = draw(st.sampled_from(sorted(FORMATS)))
    s = draw(st.integers(0, 50))
    e = draw(st.integers(s, s + 12))
    box = st.lists(st.integers(0, 9999), min_size=4, max_size=4)
    pred = {k: draw(box) for k in range(s, e + 1)}
    think = {k: draw(box) for k in range(s, e + 1)}
    return fmt, (s, e), pred, think


@given(answers())
def test_round_trip_property(case):
    fmt, span, pred, think = case
    parsed = parse_answer(format_answer(span, pred, think, fmt), fmt)
    assert parsed.ok and parsed.consistent and parsed.span == span
    assert parsed.pred == {k: [float(v) for v in b] for k, b in pred.items()}
    if get_format(fmt).think:
        assert parsed.think == {k: [float(v) for v in b] for k, b in think.items()}
