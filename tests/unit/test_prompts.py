import pytest

from shared.domain.config import PromptOptions
from shared.domain.errors import TaskError
from shared.domain.labeling import parse_labeling_config
from shared.domain.prompts import build_messages, choose_prompt, prompt_from_regions, render_prompt
from tests.conftest import labeling_config

INTERNAL = PromptOptions(
    prompt_prefix="prompt",
    use_internal_template=True,
    template="Source Text: {text}\n\nTask Directive: {prompt}",
    default_prompt=None,
)
USER = INTERNAL.model_copy(update={"use_internal_template": False})


@pytest.fixture
def sarcasm():
    return parse_labeling_config(labeling_config("sarcasm"), "prompt")


def test_internal_template_wraps_the_prompt(sarcasm):
    text = render_prompt(sarcasm, INTERNAL, "Is it {sarcastic}?", {"text": "I love Mondays"})
    assert text == "Source Text: I love Mondays\n\nTask Directive: Is it {sarcastic}?"


def test_internal_template_may_use_labels_and_task_fields(sarcasm):
    options = INTERNAL.model_copy(update={"template": "{title}: {text} [{labels}] {prompt}"})
    text = render_prompt(sarcasm, options, "classify", {"text": "t", "title": "T"})
    assert text == "T: t [['Sarcastic', 'Not Sarcastic']] classify"


def test_user_template_fills_task_fields_and_labels(sarcasm):
    prompt = "Classify {text} (by {author}, {meta}) as one of: {labels}"
    data = {"text": "I love it", "author": "ann", "meta": {"n": 1}}
    assert render_prompt(sarcasm, USER, prompt, data) == (
        "Classify I love it (by ann, {\"n\": 1}) as one of: ['Sarcastic', 'Not Sarcastic']"
    )


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ("Classify {txt}", r"uses \{txt\} but the task has no such field \(available: labels, text\)"),
        ("Classify {text", "unmatched brace"),
        ("Classify text}", "unmatched brace"),
        ("Leak {text.__class__}", "unsupported placeholder"),
        ("Leak {text[0]}", "unsupported placeholder"),
        ("Positional {}", "unsupported placeholder"),
    ],
)
def test_template_mistakes_are_task_errors(sarcasm, prompt, message):
    with pytest.raises(TaskError, match=message):
        render_prompt(sarcasm, USER, prompt, {"text": "x"})


def test_doubled_braces_are_literal(sarcasm):
    assert render_prompt(sarcasm, USER, 'Answer as {{"label": ...}} for {text}', {"text": "x"}) == (
        'Answer as {"label": ...} for x'
    )


def test_missing_source_field_is_a_task_error(sarcasm):
    with pytest.raises(TaskError, match='task data has no field "text"'):
        render_prompt(sarcasm, INTERNAL, "p", {"other": 1})


def test_paragraphs_reach_the_model_as_a_dialogue():
    spec = parse_labeling_config(labeling_config("chat"), "prompt")
    dialogue = [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "The capital of France is Paris."},
        {"role": "user", "content": "Tell me a joke."},
    ]
    text = render_prompt(spec, INTERNAL, "Answer the user", {"dialogue": dialogue})
    assert text == (
        "Source Text: user: What is the capital of France?\n"
        "assistant: The capital of France is Paris.\n"
        "user: Tell me a joke.\n\nTask Directive: Answer the user"
    )
    user_mode = render_prompt(spec, USER, "Continue:\n{dialogue}", {"dialogue": dialogue})
    assert user_mode.endswith("user: Tell me a joke.")
    with pytest.raises(TaskError, match="list of objects"):
        render_prompt(spec, INTERNAL, "p", {"dialogue": "not a list"})


def test_images_are_mentioned_in_text_and_attached_as_parts():
    spec = parse_labeling_config(labeling_config("receipts"), "prompt")
    text = render_prompt(spec, INTERNAL, "Summarise", {"image": "https://x/r.png"})
    assert text == "Source Text: (the attached image)\n\nTask Directive: Summarise"
    messages = build_messages(text, "https://x/r.png")
    assert messages == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": text},
                {"type": "image_url", "image_url": {"url": "https://x/r.png"}},
            ],
        }
    ]
    assert build_messages("hi") == [{"role": "user", "content": "hi"}]


def test_prompt_from_regions_joins_lines_of_the_prompt_textarea():
    regions = [
        {"from_name": "response", "value": {"text": ["not this"]}},
        {"from_name": "prompt", "value": {"text": ["line one", "line two"]}},
        "garbage",
        {"from_name": "prompt", "value": None},
    ]
    assert prompt_from_regions(regions, "prompt") == "line one\nline two"
    assert prompt_from_regions([], "prompt") is None
    assert prompt_from_regions(None, "prompt") is None
    assert prompt_from_regions([{"from_name": "prompt", "value": {"text": ["  "]}}], "prompt") is None


def test_prompt_precedence():
    with_default = USER.model_copy(update={"default_prompt": "default {text}"})
    assert choose_prompt("typed", "stored", with_default) == "typed"
    assert choose_prompt(None, "stored", with_default) == "stored"
    assert choose_prompt(None, None, with_default) == "default {text}"
    with pytest.raises(TaskError, match='no prompt: type one into the "prompt" TextArea'):
        choose_prompt(None, None, USER)


def test_default_prompt_needs_user_template_mode_as_in_the_reference():
    options = INTERNAL.model_copy(update={"default_prompt": "Classify {text}"})
    with pytest.raises(TaskError, match="only used with USE_INTERNAL_PROMPT_TEMPLATE=0"):
        choose_prompt(None, None, options)
