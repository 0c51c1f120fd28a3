"""The pure part of prompt refinement: the split, template variables, the teacher's request and answer, the choice,
the run's record and its text."""

from __future__ import annotations

import json

import pytest

from shared.domain.errors import InvalidRequest, TaskError
from shared.domain.prompts.improvement import (
    Candidate,
    Example,
    ImprovementRun,
    ImprovementState,
    beats,
    read_teacher_answer,
    split_tasks,
    teacher_messages,
    template_variables,
    variable_problem,
)
from shared.reports.improvement_text import render_improvement


def test_the_split_is_deterministic_disjoint_and_keeps_its_tasks_when_others_join():
    ids = list(range(1, 101))

    split = split_tasks(ids)

    assert split == split_tasks(list(reversed(ids)))  # the order tasks arrive in does not matter
    assert sorted(split.train + split.validation) == ids and not set(split.train) & set(split.validation)
    assert len(split.train) == len(split.validation) == 50
    assert split.train == sorted(split.train) and split.validation == sorted(split.validation)
    grown = split_tasks(ids + list(range(101, 121)))
    # a task annotated later joins one side; of the others, at most the few at the cut change sides
    moved = set(split.train) - set(grown.train)
    assert len(moved) <= 10


def test_the_split_needs_ten_tasks_on_each_side():
    assert len(split_tasks(list(range(20))).train) == 10
    with pytest.raises(InvalidRequest, match=r"the project has 19: annotate 1 more in Label Studio"):
        split_tasks(list(range(19)))
    with pytest.raises(InvalidRequest, match=r"\(40 annotated tasks\); the project has 30: annotate 10 more"):
        split_tasks(list(range(30)), train_share=0.25)


def test_template_variables_and_what_a_candidate_may_not_change():
    assert template_variables("Classify {text} into {labels}; write {{braces}}") == {"text", "labels"}
    assert template_variables("an unmatched { brace") == set()
    assert variable_problem("Label {text}", "Label this review carefully: {text}") is None
    assert variable_problem("Label {text} as {labels}", "Label it as {labels} ({title})") == (
        "it drops {text} and adds {title}: a candidate keeps the prompt's template variables"
    )


def test_the_teacher_sees_the_prompt_the_errors_and_which_placeholders_to_keep():
    examples = [Example(7, "It weighs 300 grams.", "Neutral", "Positive")]

    system, user = teacher_messages("Label {text}", {"text"}, examples)

    assert "keep every placeholder it has, exactly ({text})" in system["content"]
    assert user["content"] == (
        "# Current prompt\nLabel {text}\n\n# Tasks the model got wrong\n## Task 1\nText: It weighs 300 grams.\n"
        "Annotators' answer: Neutral\nModel's answer: Positive"
    )
    assert "Write no placeholders in braces." in teacher_messages("Label it", set(), examples)[0]["content"]


def test_the_teachers_answer_is_read_from_json_or_prose_around_it():
    answer = json.dumps({"reasoning": " Define Neutral. ", "prompt": " Label {text}; Neutral: facts. "})

    assert read_teacher_answer(answer) == ("Label {text}; Neutral: facts.", "Define Neutral.")
    assert read_teacher_answer(f"Here it is:\n```json\n{answer}\n```") == (
        "Label {text}; Neutral: facts.",
        "Define Neutral.",
    )
    with pytest.raises(TaskError, match="holds no revised prompt"):
        read_teacher_answer('{"reasoning": "none", "prompt": "  "}')


def test_a_candidate_beats_the_current_prompt_only_when_strictly_higher():
    assert beats(0.9, 0.8) and beats(0.1, None)
    assert not beats(0.8, 0.8) and not beats(0.7, 0.8) and not beats(None, 0.8) and not beats(None, None)


def test_a_run_survives_its_record_and_reads_as_text():
    candidate = Candidate(
        round=1,
        prompt="Label {text}; Neutral: facts.",
        reasoning="Define Neutral.",
        train_disagreements=3,
        train_before={"sentiment": 0.75},
        validation_after={"sentiment": 1.0},
        overall_after=1.0,
        tokens_in=1200,
        tokens_out=40,
        cost_usd=0.000204,
    )
    run = ImprovementRun(
        id="r1",
        project="5",
        created_at=1.0,
        state=ImprovementState.DONE,
        model="gpt-4o-mini",
        teacher_model="gpt-4o",
        prompt="Label {text}",
        model_version="gpt-4o-mini-abc",
        train=[1, 2],
        validation=[3, 4],
        validation_before={"sentiment": 0.75},
        overall_before=0.75,
        candidates=[candidate],
        best=1,
        apply=True,
        applied_version="gpt-4o-mini-def",
        cost_usd=0.0003,
    )

    assert ImprovementRun.from_dict(json.loads(json.dumps(run.as_dict()))) == run
    text = render_improvement(run)
    assert "validation before: sentiment 0.750 (overall 0.750)" in text
    assert "validation after: sentiment 1.000 (overall 1.000, +0.250)  (best)" in text
    assert "cost: $0.000204 (1,200 tokens in, 40 out)" in text
    assert "reasoning:\n    Define Neutral.\n  prompt:\n    Label {text}; Neutral: facts." in text
    assert "applied: round 1's prompt is the project's prompt, model version gpt-4o-mini-def" in text
