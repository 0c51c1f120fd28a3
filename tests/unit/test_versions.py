from shared.domain.config import load_settings
from shared.domain.labeling.schema import answer_instructions, answer_schema
from shared.domain.labeling.spec import parse_labeling_config
from shared.domain.versions import answer_format, model_version
from tests.conftest import labeling_config


def test_the_version_is_stable_and_follows_the_output_mode():
    config = load_settings().defaults
    sarcasm = labeling_config("sarcasm")
    assert model_version(config, sarcasm, "p") == model_version(config, sarcasm, "p")
    as_text = config.model_copy(update={"output_mode": "text"})
    assert model_version(as_text, sarcasm, "p") != model_version(config, sarcasm, "p")
    assert model_version(config, sarcasm, "p").startswith("gpt-3.5-turbo-")


def test_the_version_covers_the_answers_schema_and_instructions():
    config = load_settings().defaults
    spec = parse_labeling_config(labeling_config("evaluation"), "prompt")
    assert answer_format(config, labeling_config("evaluation")) == {
        "schema": answer_schema(spec, {}),
        "instructions": answer_instructions(spec),
    }
    assert answer_format(config, "<View/>") is None  # unusable configs predict nothing; the version still works
    assert model_version(config, "<View/>", None) != model_version(config, labeling_config("sarcasm"), None)


def test_the_size_limit_does_not_change_the_version():
    config = load_settings().defaults
    padding = "<!--" + "x" * (1024 * 1024) + "-->"
    big = labeling_config("sarcasm").replace("<View>", "<View>" + padding, 1)
    assert answer_format(config, big) is not None
