import pytest

from dataflux.mcq import extract_letter, split_final_answer

OPTIONS = ["A man's voice", "A woman's voice", "A young child's voice", "No voice can be heard"]


@pytest.mark.parametrize("text, letter, how", [
    ("The answer is B.", "B", "anchored"),
    ("A man speaks here, so... Answer: C", "C", "anchored"),
    ("D", "D", "anchored"),
    ("**A**", "A", "anchored"),
    ("<think>It could be A. Or maybe C.</think>\nFinal answer: (B)", "B", "anchored"),
    ("Option A is wrong, option B is wrong.\nThe correct choice is (C)", "C", "anchored"),
    ("B. A woman's voice", "B", "anchored"),
    ("I clearly hear a woman's voice.", "B", "option_text"),
    ("A man's voice, definitely.", "A", "option_text"),
    ("A voice is heard, a man's voice or a woman's voice", None, "unparsed"),  # two option texts: no guess
    ("I am not sure.", None, "unparsed"),
    ("", None, "unparsed"),
    (None, None, "unparsed"),
])
def test_letter_extraction(text, letter, how):
    assert extract_letter(text, OPTIONS) == (letter, how)


def test_a_letter_beyond_the_options_is_not_an_answer():
    assert extract_letter("Answer: D", ["yes", "no"]) == (None, "unparsed")


def test_split_final_answer():
    assert split_final_answer("It is low.\nAnswer: B") == "It is low."
    assert split_final_answer("It is low. Answer: B") == "It is low."
    assert split_final_answer("No final line here.") == "No final line here."
