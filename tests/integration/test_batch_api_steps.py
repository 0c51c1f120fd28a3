"""A job through the provider's Batch API, step by step: submit, poll, collect, then the chunks push.

No Celery here (test_batch_api_workers.py runs real workers): the steps are called as the messages would
call them, against fakeredis, the fake OpenAI server (its files and batches endpoints, on its own clock)
and the recording Label Studio stand-in, over real HTTP through the real ``openai`` client.
"""

import pytest

from shared.adapters.store import ProjectSetup
from shared.dispatch import cancel_job
from shared.domain.batch_requests import custom_id
from shared.domain.estimation.pricing import DEFAULT_PRICES, TokenUsage, usage_cost
from shared.services import Services
from tests.conftest import LS_TOKEN, labeling_config
from tests.integration.chunk_runs import run_chunk
from worker.chunks import ChunkRunner

pytestmark = pytest.mark.prose_answers
PROJECT = "31"


@pytest.fixture
def make_batch(make_settings, store, fake_label_studio, fake_llm):
    """A project set up as Label Studio would, and the steps of a job: start, begin, poll, run the chunks."""
    store.save_setup(PROJECT, ProjectSetup(labeling_config("sarcasm"), fake_label_studio.url, LS_TOKEN))
    store.save_prompt(PROJECT, "Is it sarcastic?")
    fake_llm.reply = lambda messages, index: "Sarcastic"

    def make(**overrides):
        values = {
            "batch_api": "on",
            "batch_chunk_size": 5,
            "batch_api_max_requests": 5,
            "llm_max_retries": 0,
            "batch_max_attempts": 2,
            "cache_ttl": 0,
            "handover_grace": 0.0,
            "openai_model": "gpt-4o-mini",
        }
        settings = make_settings(**(values | overrides))

        class Batch:
            services = Services.build(settings, store)
            jobs = services.jobs
            steps = services.batch_jobs
            runner = ChunkRunner(settings, services.projects, services.predictor, jobs)

            def start(self, task_ids):
                ctx = self.services.projects.context(PROJECT, None, None)
                fake_label_studio.hold_tasks(int(PROJECT), [{"id": i, "data": {"text": f"text {i}"}} for i in task_ids])
                snapshot = self.services.projects.snapshot(ctx)
                return self.jobs.create(snapshot, list(task_ids), settings.batch_chunk_size), ctx

            def run_chunks(self, job_id):
                chunks = range(self.jobs.chunk_count(job_id))
                return [run_chunk(self.runner, job_id, i, 0, "worker-a") for i in chunks]

        return Batch()

    return make


def assert_each_task_pushed_once(fake_label_studio, task_ids, version):
    by_task = fake_label_studio.predictions_by_task()
    assert sorted(by_task) == sorted(task_ids)
    assert all(len(predictions) == 1 for predictions in by_task.values()), "one prediction per task"
    assert {p["model_version"] for predictions in by_task.values() for p in predictions} == {version}


def test_a_job_split_into_files_is_answered_by_batches_then_pushed_without_live_calls(
    make_batch, fake_llm, fake_label_studio
):
    batch = make_batch()
    job_id, ctx = batch.start(range(12))

    assert batch.steps.begin(job_id) is True
    assert [len(upload.lines()) for upload in fake_llm.uploads] == [5, 5, 2], "BATCH_API_MAX_REQUESTS=5 a file"
    first_line = fake_llm.uploads[0].lines()[0]
    assert first_line["custom_id"] == custom_id(0) and first_line["url"] == "/v1/chat/completions"
    messages, _output = batch.services.predictor.request_for(ctx, {"text": "text 0"})
    assert first_line["body"]["messages"] == messages, "the same messages the live path sends"
    status = batch.jobs.status(job_id)
    assert (status.mode, status.state, len(status.batches)) == ("batch_api", "running", 3)
    assert {b["status"] for b in status.batches} <= {"validating", "in_progress"}
    assert [o.retry_in for o in batch.run_chunks(job_id)] == [None] * 3 and fake_llm.chat_requests == []
    assert fake_label_studio.predictions_by_task() == {}, "chunks wait while the batches run"

    fake_llm.batch_turnaround = 0  # read when a batch is created: these keep their 1 s
    waiting = batch.steps.poll(job_id, 0)
    assert waiting.next_in == 10.0 and not waiting.dispatch
    assert batch.steps.poll(job_id, 0).next_in is None, "a poll sent twice runs once"
    fake_llm.advance_clock(2)
    done = batch.steps.poll(job_id, 1)
    assert done.dispatch and {b["status"] for b in done.batches.values()} == {"completed"}

    batch.run_chunks(job_id)
    assert_each_task_pushed_once(fake_label_studio, range(12), ctx.model_version)
    assert fake_llm.live_completions == [] and len(fake_llm.batch_completions) == 12
    status = batch.jobs.status(job_id)
    assert (status.state, status.done, status.pushed, status.failed) == ("done", 12, 12, 0)
    usage = [c.answer["usage"] for c in fake_llm.batch_completions]
    tokens = TokenUsage(
        sum(u["prompt_tokens"] for u in usage),
        sum(u["completion_tokens"] for u in usage),
        sum(u["prompt_tokens_details"]["cached_tokens"] for u in usage),
    )
    assert (status.tokens_in, status.tokens_out, status.tokens_cached) == (
        tokens.tokens_in,
        tokens.tokens_out,
        tokens.cached,
    )
    assert status.live_cost_usd == usage_cost(DEFAULT_PRICES["gpt-4o-mini"], tokens)
    assert status.cost_usd == usage_cost(DEFAULT_PRICES["gpt-4o-mini"], tokens, 0.5) > 0


def test_failed_lines_and_an_expired_batch_fall_back_to_live_each_task_asked_once(
    make_batch, fake_llm, fake_label_studio
):
    batch = make_batch(batch_api_max_requests=50)
    fake_llm.batch_turnaround, fake_llm.batch_expires_after = 10.0, 5.0  # half the lines done when it expires
    fake_llm.batch_line_failures = {custom_id(1): (400, "bad request line"), custom_id(2): (400, "bad too")}
    job_id, ctx = batch.start(range(10))
    assert batch.steps.begin(job_id)

    fake_llm.advance_clock(6)
    outcome = batch.steps.poll(job_id, 0)
    assert outcome.dispatch
    [state] = outcome.batches.values()
    assert state["status"] == "expired" and state["counts"] == {"total": 10, "completed": 3, "failed": 2}
    batch.run_chunks(job_id)

    assert_each_task_pushed_once(fake_label_studio, range(10), ctx.model_version)
    live = {str(c.body["messages"]) for c in fake_llm.live_completions}
    assert len(fake_llm.batch_completions) == 3 and len(live) == 7, "3 answered in the batch, the rest live"
    assert fake_llm.asked_more_than_once() == {}
    status = batch.jobs.status(job_id)
    assert (status.state, status.pushed, status.failed) == ("done", 10, 0)
    assert status.live_cost_usd > status.cost_usd > status.live_cost_usd / 2, "only the batch's share at half price"


def test_auto_sends_only_large_jobs_through_the_batch_api(make_batch, fake_llm, fake_label_studio):
    batch = make_batch(batch_api="auto", batch_api_min_tasks=8)
    small, _ = batch.start(range(7))
    assert batch.steps.begin(small) is False
    assert fake_llm.uploads == [] and batch.jobs.status(small).mode == "live"
    large, _ = batch.start(range(100, 108))
    assert batch.steps.begin(large) is True
    assert [len(upload.lines()) for upload in fake_llm.uploads] == [5, 3]


def test_a_redelivered_dispatch_does_not_submit_again(make_batch, fake_llm):
    batch = make_batch()
    job_id, _ = batch.start(range(7))
    assert batch.steps.begin(job_id) and batch.steps.begin(job_id)
    assert len(fake_llm.batches) == 2


def test_tasks_in_label_studio_or_failed_already_get_no_line(make_batch, fake_llm):
    batch = make_batch()
    job_id, ctx = batch.start(range(6))
    batch.jobs.ledger(ctx.project, ctx.model_version).reconcile([0, 1], [])  # found in Label Studio
    batch.jobs.add(job_id, "failed", [2])
    assert batch.steps.begin(job_id)
    assert [line["custom_id"] for line in fake_llm.uploads[0].lines()] == [custom_id(i) for i in (3, 4, 5)]


def test_cancelling_the_job_cancels_its_batches_and_pushes_nothing(make_batch, fake_llm, fake_label_studio):
    batch = make_batch(batch_api_max_requests=50)
    fake_llm.batch_turnaround = 100.0
    job_id, _ = batch.start(range(10))
    assert batch.steps.begin(job_id)
    fake_llm.advance_clock(30)
    status = cancel_job(batch.services, job_id)

    assert status.state == "cancelled"
    [provider_batch] = fake_llm.batches.values()
    assert provider_batch.status in ("cancelling", "cancelled")
    outcome = batch.steps.poll(job_id, 0)
    assert outcome.next_in is None and not outcome.dispatch, "the poll chain ends"
    batch.run_chunks(job_id)
    assert fake_label_studio.predictions_by_task() == {} and fake_llm.live_completions == []


def test_a_batch_cancelled_at_the_provider_leaves_its_open_tasks_to_the_live_path(
    make_batch, fake_llm, fake_label_studio, llm_server
):
    import openai

    batch = make_batch(batch_api_max_requests=50)
    fake_llm.batch_turnaround = 10.0
    job_id, ctx = batch.start(range(10))
    assert batch.steps.begin(job_id)
    fake_llm.advance_clock(4)
    [batch_id] = fake_llm.batches
    openai.OpenAI(api_key="sk-test", base_url=f"{llm_server.url}/v1").batches.cancel(batch_id)

    assert batch.steps.poll(job_id, 0).dispatch
    batch.run_chunks(job_id)
    assert_each_task_pushed_once(fake_label_studio, range(10), ctx.model_version)
    assert len(fake_llm.batch_completions) == 4 and len(fake_llm.live_completions) == 6
    assert fake_llm.asked_more_than_once() == {}


def test_tasks_answered_from_the_llm_cache_get_no_line_and_no_call(make_batch, fake_llm, fake_label_studio):
    batch = make_batch(cache_ttl=600)
    ctx = batch.services.projects.context(PROJECT, None, None)
    for task_id in (0, 1):  # answered live before, by an earlier job of another version or an annotator
        batch.services.predictor.predict(ctx, {"id": task_id, "data": {"text": f"text {task_id}"}})
    job_id, _ = batch.start(range(6))

    assert batch.steps.begin(job_id)
    assert [line["custom_id"] for line in fake_llm.uploads[0].lines()] == [custom_id(i) for i in (2, 3, 4, 5)]
    fake_llm.advance_clock(2)
    assert batch.steps.poll(job_id, 0).dispatch
    batch.run_chunks(job_id)
    assert_each_task_pushed_once(fake_label_studio, range(6), ctx.model_version)
    assert len(fake_llm.live_completions) == 2 and len(fake_llm.batch_completions) == 4
    assert fake_llm.asked_more_than_once() == {}


def test_files_the_provider_refuses_go_live_with_the_reason_in_the_job(make_batch, fake_llm, fake_label_studio):
    batch = make_batch()
    fake_llm.batch_max_requests = 4  # the files of 5 are refused (a 400), the last one of 2 is taken
    job_id, ctx = batch.start(range(12))
    assert batch.steps.begin(job_id)
    assert [len(upload.lines()) for upload in fake_llm.uploads] == [2]
    errors = [error["error"] for error in batch.jobs.status(job_id).errors]
    assert len(errors) == 2 and all(
        "Batch API refused file" in error and "more than the 4" in error for error in errors
    )

    fake_llm.advance_clock(2)
    assert batch.steps.poll(job_id, 0).dispatch
    batch.run_chunks(job_id)
    assert_each_task_pushed_once(fake_label_studio, range(12), ctx.model_version)
    assert len(fake_llm.live_completions) == 10 and len(fake_llm.batch_completions) == 2


def test_a_submission_that_keeps_failing_leaves_the_job_to_the_live_path(make_batch, fake_llm, fake_label_studio):
    batch = make_batch()
    job_id, ctx = batch.start(range(6))
    assert batch.steps.give_up_submitting(job_id, "ConnectionError: the provider is away") is False
    assert batch.steps.begin(job_id) is False, "a dispatch sent again fans the chunks out"
    batch.run_chunks(job_id)
    assert_each_task_pushed_once(fake_label_studio, range(6), ctx.model_version)
    assert len(fake_llm.live_completions) == 6 and fake_llm.uploads == []
    [error] = batch.jobs.status(job_id).errors
    assert "submission gave up (ConnectionError: the provider is away)" in error["error"]


def test_a_job_cancelled_before_it_starts_submits_nothing_to_the_batch_api(make_batch, fake_llm):
    """``begin`` reads what ``mark_running`` and the phase change say, atomically with the job's state: a job
    cancelled just before its dispatch runs uploads no file and starts no batch (no money spent)."""
    batch = make_batch()
    job_id, _ = batch.start(range(10))
    batch.jobs.cancel(job_id)
    assert batch.steps.begin(job_id) is False
    assert fake_llm.batches == {} and batch.jobs.batch_phase(job_id) is None


NER = """<View><Text name="text" value="$text"/><TextArea name="prompt" toName="text"/>
  <Labels name="ner" toName="text"><Label value="PER"/></Labels></View>"""


def test_a_task_with_a_long_text_gets_no_line_and_is_predicted_live_in_parts(
    make_batch, store, fake_llm, fake_label_studio
):
    store.save_setup(PROJECT, ProjectSetup(NER, fake_label_studio.url, LS_TOKEN))
    batch = make_batch(long_text_chars=1000, output_mode="json_schema")
    anna = {"text": "Anna", "label": "PER", "start": None}
    fake_llm.reply = lambda messages, index: {"ner": [anna] * messages[-1]["content"].count("Anna")}
    long_text = "Anna met Bob at noon. " * 150  # 3,300 characters: 4 parts of at most 1,000
    job_id, ctx = batch.start(range(4))
    fake_label_studio.hold_tasks(int(PROJECT), [{"id": 0, "data": {"text": long_text}}])  # 1-3 keep "text i"

    assert batch.steps.begin(job_id) is True
    [upload] = fake_llm.uploads
    assert [line["custom_id"] for line in upload.lines()] == [custom_id(1), custom_id(2), custom_id(3)]
    fake_llm.batch_turnaround = 0
    fake_llm.advance_clock(2)
    assert batch.steps.poll(job_id, 0).dispatch
    batch.run_chunks(job_id)

    assert_each_task_pushed_once(fake_label_studio, range(4), ctx.model_version)
    parts = [c for c in fake_llm.live_completions if "Anna met Bob" in c.body["messages"][-1]["content"]]
    assert len(parts) == len(fake_llm.live_completions) == 4, "the long text alone went live, in its parts"
    [prediction] = fake_label_studio.predictions_by_task()[0]
    spans = [region["value"] for region in prediction["result"] if region["from_name"] == "ner"]
    assert [span["start"] for span in spans] == [index * 22 for index in range(150)], "every Anna once"
