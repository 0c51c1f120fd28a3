import pytest

from shared.domain.config import DEFAULT_PROMPT_TEMPLATE, REFERENCE_PROMPT_TEMPLATE, PromptOptions
from shared.domain.errors import TaskError
from shared.domain.labeling.spec import parse_labeling_config
from shared.domain.prompts.messages import (
    choose_prompt,
    compose_messages,
    prompt_from_regions,
    task_images,
)
from tests.conftest import labeling_config

INTERNAL = PromptOptions(
    prompt_prefix="prompt",
    use_internal_template=True,
    template=REFERENCE_PROMPT_TEMPLATE,
    default_prompt=None,
)
USER = INTERNAL.model_copy(update={"use_internal_template": False})


@pytest.fixture
def sarcasm():
    return parse_labeling_config(labeling_config("sarcasm"), "prompt")


def prompt_text(spec, options, prompt, data) -> str:
    """The prompt of a task whose template puts nothing before the task's data: one user message, as the
    reference sends it."""
    [message] = compose_messages(spec, options, prompt, data)
    assert message["role"] == "user"
    return message["content"]


def test_internal_template_wraps_the_prompt(sarcasm):
    text = prompt_text(sarcasm, INTERNAL, "Is it {sarcastic}?", {"text": "I love Mondays"})
    assert text == "Source Text: I love Mondays\n\nTask Directive: Is it {sarcastic}?"


def test_internal_template_may_use_labels_and_task_fields(sarcasm):
    options = INTERNAL.model_copy(update={"template": "{title}: {text} [{labels}] {prompt}"})
    text = prompt_text(sarcasm, options, "classify", {"text": "t", "title": "T"})
    assert text == "T: t [['Sarcastic', 'Not Sarcastic']] classify"


def test_user_template_fills_task_fields_and_labels(sarcasm):
    prompt = "Classify {text} (by {author}, {meta}) as one of: {labels}"
    data = {"text": "I love it", "author": "ann", "meta": {"n": 1}}
    assert prompt_text(sarcasm, USER, prompt, data) == (
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
        prompt_text(sarcasm, USER, prompt, {"text": "x"})


def test_doubled_braces_are_literal(sarcasm):
    assert prompt_text(sarcasm, USER, 'Answer as {{"label": ...}} for {text}', {"text": "x"}) == (
        'Answer as {"label": ...} for x'
    )


def test_missing_source_field_is_a_task_error(sarcasm):
    with pytest.raises(TaskError, match='task data has no field "text"'):
        prompt_text(sarcasm, INTERNAL, "p", {"other": 1})


def test_paragraphs_reach_the_model_as_a_dialogue():
    spec = parse_labeling_config(labeling_config("chat"), "prompt")
    dialogue = [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "The capital of France is Paris."},
        {"role": "user", "content": "Tell me a joke."},
    ]
    text = prompt_text(spec, INTERNAL, "Answer the user", {"dialogue": dialogue})
    assert text == (
        "Source Text: user: What is the capital of France?\n"
        "assistant: The capital of France is Paris.\n"
        "user: Tell me a joke.\n\nTask Directive: Answer the user"
    )
    user_mode = prompt_text(spec, USER, "Continue:\n{dialogue}", {"dialogue": dialogue})
    assert user_mode.endswith("user: Tell me a joke.")
    with pytest.raises(TaskError, match="list of objects"):
        prompt_text(spec, INTERNAL, "p", {"dialogue": "not a list"})


def test_images_are_mentioned_in_text_and_attached_as_parts():
    spec = parse_labeling_config(labeling_config("receipts"), "prompt")
    text = prompt_text(spec, INTERNAL, "Summarise", {"image": "https://x/r.png"})
    assert text == "Source Text: (the attached image)\n\nTask Directive: Summarise"
    messages = compose_messages(
        spec, INTERNAL, "Summarise", {"image": "https://x/r.png"}, image_urls=["https://x/r.png"]
    )
    assert messages == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": text},
                {"type": "image_url", "image_url": {"url": "https://x/r.png"}},
            ],
        }
    ]
    assert compose_messages(spec, USER, "hi", {"image": "https://x/r.png"}) == [{"role": "user", "content": "hi"}]


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


def test_without_instructions_the_layout_is_the_references_single_user_message(sarcasm):
    data = {"text": "I love Mondays"}
    assert compose_messages(sarcasm, INTERNAL, "Is it sarcastic?", data) == [
        {"role": "user", "content": prompt_text(sarcasm, INTERNAL, "Is it sarcastic?", data)}
    ]


def test_what_is_the_same_for_every_task_comes_first():
    spec = parse_labeling_config(labeling_config("sarcasm"), "prompt")
    options = INTERNAL.model_copy(update={"template": DEFAULT_PROMPT_TEMPLATE})
    first = compose_messages(spec, options, "Is it sarcastic?", {"text": "one"}, instructions="Answer in JSON.")
    second = compose_messages(spec, options, "Is it sarcastic?", {"text": "two"}, instructions="Answer in JSON.")
    assert first == [
        {"role": "system", "content": "Task Directive: Is it sarcastic?\n\nAnswer in JSON."},
        {"role": "user", "content": "Source Text: one"},
    ]
    assert first[0] == second[0]
    reference = compose_messages(spec, INTERNAL, "Is it sarcastic?", {"text": "one"}, instructions="Answer in JSON.")
    assert reference == [
        {"role": "system", "content": "Answer in JSON."},
        {"role": "user", "content": "Source Text: one\n\nTask Directive: Is it sarcastic?"},
    ]


def test_labels_stay_in_the_fixed_part_and_task_fields_move_to_the_task_part(sarcasm):
    options = INTERNAL.model_copy(update={"template": "{prompt}\nLabels: {labels}\nTitle: {title}\n{text}"})
    messages = compose_messages(sarcasm, options, "Classify.", {"text": "t", "title": "T"})
    assert messages == [
        {"role": "system", "content": "Classify.\nLabels: ['Sarcastic', 'Not Sarcastic']"},
        {"role": "user", "content": "Title: T\nt"},
    ]
    whole = "Classify.\nLabels: ['Sarcastic', 'Not Sarcastic']\nTitle: T\nt"  # the template filled in
    assert "\n".join(message["content"] for message in messages) == whole  # the same words, cut in two


def test_user_template_mode_keeps_the_prompt_as_written_in_the_user_message(sarcasm):
    prompt = "Is {text} one of {labels}?"
    messages = compose_messages(sarcasm, USER, prompt, {"text": "x"}, instructions="JSON please", task_notes="N")
    assert messages == [
        {"role": "system", "content": "JSON please"},
        {"role": "user", "content": "Is x one of ['Sarcastic', 'Not Sarcastic']?\n\nN"},
    ]


def test_several_objects_are_all_sent_each_named_and_images_attached():
    config = """<View><Text name="question" value="$q"/><Image name="photo" value="$img"/>
      <Image name="scan" value="$scan"/><Paragraphs name="chat" value="$chat"/>
      <TextArea name="prompt" toName="question"/>
      <ParagraphLabels name="slots" toName="chat"><Label value="City"/></ParagraphLabels></View>"""
    spec = parse_labeling_config(config, "prompt")
    data = {
        "q": "Where?",
        "img": "https://x/1.png",
        "chat": [{"author": "a", "text": "Rome"}, {"author": "b", "text": "ok"}],
    }
    messages = compose_messages(spec, INTERNAL, "Answer", data, image_urls=["data:1", "data:2"])
    assert messages == [
        {
            "role": "user",
            "content": [
                {
                    "type": "text",
                    "text": "Source Text: ### question (Text)\nWhere?\n\n### photo (Image)\n(the attached image)\n\n"
                    "### chat (Paragraphs)\n[0] a: Rome\n[1] b: ok\n\nTask Directive: Answer",
                },
                {"type": "image_url", "image_url": {"url": "data:1"}},
                {"type": "image_url", "image_url": {"url": "data:2"}},
            ],
        }
    ]
    assert [(obj.name, value) for obj, value in task_images(spec, data)] == [("photo", "https://x/1.png")]
    assert [obj.name for obj, _ in task_images(spec, {**data, "scan": "s.png"})] == ["photo", "scan"]
    assert prompt_text(spec, USER, "{chat}", data) == "[0] a: Rome\n[1] b: ok"
    with pytest.raises(TaskError, match='task data has no field "q"'):
        compose_messages(spec, INTERNAL, "Answer", {"img": "x"})


def test_dynamic_options_join_the_labels_of_the_task():
    config = """<View><Text name="t" value="$t"/><TextArea name="prompt" toName="t"/>
      <Choices name="fixed" toName="t"><Choice value="a"/></Choices>
      <Choices name="d" toName="t" value="$opts"/></View>"""
    spec = parse_labeling_config(config, "prompt")
    assert prompt_text(spec, USER, "{labels}", {"t": "x", "opts": [{"value": "b"}, "a"]}) == "['a', 'b']"


def test_several_pictures_are_numbered_in_the_order_they_are_attached():
    config = """<View><Text name="q" value="$q"/><Image name="pages" valueList="$pages"/>
      <Image name="photo" value="$photo"/><TextArea name="prompt" toName="q"/>
      <Choices name="c" toName="q"><Choice value="a"/></Choices></View>"""
    spec = parse_labeling_config(config, "prompt")
    data = {"q": "Which?", "pages": ["p1.png", "p2.png"], "photo": "x.png"}
    text = prompt_text(spec, USER, "{text}", data)
    assert text == (
        "### q (Text)\nWhich?\n\n### pages (Image)\n(attached images 1 to 2)\n\n### photo (Image)\n(attached image 3)"
    )
    assert [value for _obj, value in task_images(spec, data)] == [["p1.png", "p2.png"], "x.png"]
    assert "(the attached image)" in prompt_text(spec, USER, "{text}", {"q": "Which?", "photo": "x.png"})
