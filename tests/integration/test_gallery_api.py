"""Every Label Studio gallery template this backend reads (tests/configs/gallery), over HTTP.

Each template, with a prompt TextArea added, goes through ``/setup`` (200, or 400 only when nothing in it is
fillable) and an interactive ``/predict``; the fake model answers an instance of the schema it was sent,
quoting the task's own words for spans.  Every prediction must pass ``LabelInterface.validate_prediction``,
and over the whole gallery at least 90 % of the controls in scope must be filled.  The test prints a table:
template, controls in scope, controls filled.
"""

from __future__ import annotations

from label_studio_sdk.label_interface import LabelInterface

from shared.domain.labeling import parse_labeling_config
from shared.domain.schema import answer_schema
from tests.unit.test_gallery import TEMPLATES, sample_answer, sample_task, with_prompt

PROJECT = "5.1700000000"
FILL_BAR = 0.9


def with_public_images(spec, data: dict) -> dict:
    """The SDK's sample images are on localhost, which (rightly) never goes to the provider: public URLs instead."""
    images = {obj.field: obj for obj in spec.objects if obj.kind == "Image" and obj.field in data}
    public = {field: f"https://example.com/{field}.png" for field in images}
    return data | {field: [url] if isinstance(data[field], list) else url for field, url in public.items()}


def predict_template(client, fake_llm, config: str) -> tuple[int, int, str]:
    """(controls in scope, controls filled, a note) for one template; asserts what must hold for each."""
    setup = client.post("/setup", json={"project": PROJECT, "schema": config})
    if setup.status_code == 400:
        assert "nowhere to put the answer" in setup.json["error"], setup.json
        return 0, 0, "400: " + setup.json["error"].split("(not filled: ")[-1][:70]
    assert setup.status_code == 200, setup.json
    spec = parse_labeling_config(config, "prompt")
    data = with_public_images(spec, sample_task(config))
    schema = answer_schema(spec, data)
    answer = sample_answer(spec, schema, data, seed=0)
    fake_llm.reset()
    fake_llm.reply = lambda messages, index: answer
    prompt = {"from_name": spec.prompt.name, "to_name": spec.prompt.to_name[0], "type": "textarea"}
    context = {"result": [prompt | {"value": {"text": ["Label this task"]}}]}
    body = {
        "tasks": [{"id": 1, "data": data}],
        "project": PROJECT,
        "label_config": config,
        "params": {"context": context},
    }
    response = client.post("/predict", json=body)
    assert response.status_code == 200, response.json
    [prediction] = response.json["results"]
    [request] = fake_llm.chat_requests
    assert request.body["response_format"]["json_schema"]["schema"] == schema
    # the SDK refuses its own Pairwise regions (to_name is the Pairwise tag, as Label Studio's editor writes it)
    checked = {**prediction, "result": [region for region in prediction["result"] if region["type"] != "pairwise"]}
    assert LabelInterface(config).validate_prediction(checked, return_errors=True) == []
    filled = {region["from_name"] for region in prediction["result"]} - {spec.prompt.name}
    unfilled = ", ".join(f"{item.name}:{item.tag}" for item in spec.unfilled)
    return len(spec.outputs), len(filled), f"unfilled {unfilled}" if unfilled else ""


def test_every_gallery_template_over_http(client, fake_llm):
    rows, problems = [], []
    for path in TEMPLATES:
        try:
            rows.append((path.stem, *predict_template(client, fake_llm, with_prompt(path.read_text()))))
        except AssertionError as exc:
            problems.append(f"{path.stem}: {exc}")
            rows.append((path.stem, 0, 0, "FAILED"))
    in_scope = sum(row[1] for row in rows)
    filled = sum(row[2] for row in rows)
    width = max(len(row[0]) for row in rows)
    print(f"\n{'template':<{width}}  in scope  filled  note")
    for name, scope, done, note in rows:
        print(f"{name:<{width}}  {scope:>8}  {done:>6}  {note}")
    print(f"{'whole gallery':<{width}}  {in_scope:>8}  {filled:>6}  {filled / in_scope:.1%} filled")
    refused = [name for name, _scope, _done, note in rows if note.startswith("400")]
    print(f"refused by /setup (nothing fillable): {', '.join(refused) or 'none'}")
    assert problems == []
    assert filled / in_scope >= FILL_BAR
