"""A model that declines, through ``/predict``: a prediction (200), not the 422 the annotator used to see.

Over HTTP to the fake OpenAI server with the real ``openai`` client and the real Redis: the answer that declines
leaves the controls empty (or gives the config's own none/other choice), the reason is logged, and
``llm_backend_abstentions_total`` counts it on ``/metrics``; a ``<Choice>``'s hint names its label in prose.
"""

from __future__ import annotations

import logging

from tests.integration.test_api import assert_fits_config, post_predict, prompt_context, regions_by_name
from tests.integration.test_metrics import samples

CONFIG = """<View>
  <Text name="text" value="$text"/>
  <TextArea name="prompt" toName="text"/>
  <Choices name="topic" toName="text">
    <Choice value="World"/><Choice value="Sports"/><Choice value="Sci/Tech" alias="sci_tech" hint="Science news"/>
    {other}
  </Choices>
</View>"""
WITHOUT_OTHER = CONFIG.format(other="")
WITH_OTHER = CONFIG.format(other='<Choice value="Other"/>')


def abstentions(client) -> dict[tuple[str, str], float]:
    return {
        (dict(labels)["control_type"], dict(labels)["outcome"]): value
        for (name, labels), value in samples(client).items()
        if name == "llm_backend_abstentions_total"
    }


def predict_one(client, config, text="A text."):
    """The prediction for one task (answers are cached by request: a new answer needs another text)."""
    response = post_predict(client, [{"id": 1, "data": {"text": text}}], config, prompt_context("Topic?", "text"))
    assert response.status_code == 200, response.json
    [prediction] = response.json["results"]
    assert_fits_config(config, prediction)
    return prediction


def test_an_answer_that_declines_is_an_empty_prediction_logged_and_counted(
    make_client, make_settings, fake_llm, caplog
):
    caplog.set_level(logging.INFO, logger="shared.predictor")
    client = make_client(make_settings(output_mode="text"))
    assert abstentions(client) == {}
    fake_llm.reply = lambda messages, index: "I cannot determine the topic of this text."

    prediction = predict_one(client, WITHOUT_OTHER)
    assert regions_by_name(prediction) == {"prompt": {"text": ["Topic?"]}}  # no region of the control: only the echo
    assert prediction["score"] == 0.0
    assert "task 1: the model declined ('cannot determine'): topic: empty" in caplog.text
    assert abstentions(client) == {("Choices", "empty"): 1.0}

    fake_llm.reply = lambda messages, index: "None of these categories fit."
    prediction = predict_one(client, WITH_OTHER, "Another text.")
    assert regions_by_name(prediction)["topic"] == {"choices": ["Other"]}
    assert "task 1: the model declined ('none of these'): topic: none_choice" in caplog.text
    assert abstentions(client) == {("Choices", "empty"): 1.0, ("Choices", "none_choice"): 1.0}


def test_a_structured_answer_declines_with_null(make_client, make_settings, fake_llm):
    client = make_client(make_settings(output_mode="json_schema"))
    fake_llm.reply = lambda messages, index: {"topic": None}
    prediction = predict_one(client, WITHOUT_OTHER)
    assert regions_by_name(prediction) == {"prompt": {"text": ["Topic?"]}}
    assert abstentions(client) == {("Choices", "empty"): 1.0}


def test_an_answer_that_neither_fits_nor_declines_still_fails_and_counts_nothing(make_client, make_settings, fake_llm):
    client = make_client(make_settings(output_mode="text"))
    fake_llm.reply = lambda messages, index: "Not World."
    tasks = [{"id": 1, "data": {"text": "A text."}}]
    response = post_predict(client, tasks, WITHOUT_OTHER, prompt_context("?", "text"))
    assert response.status_code == 422
    assert response.json["error"] == "nothing in the model's answer fits this labeling config: 'Not World.'"
    assert abstentions(client) == {}


def test_a_paraphrased_name_reads_as_its_choice_and_is_stored_as_its_alias(make_client, make_settings, fake_llm):
    client = make_client(make_settings(output_mode="text"))
    for answer in ("Science and Technology", "It is science news."):
        fake_llm.reply = lambda messages, index, answer=answer: answer
        prediction = predict_one(client, WITHOUT_OTHER, f"A text for {answer!r}.")
        assert regions_by_name(prediction)["topic"] == {"choices": ["sci_tech"]}, answer
    assert abstentions(client) == {}
