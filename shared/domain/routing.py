"""Answer now, queue a job, or refuse: the one decision every way in takes for its tasks, with its reason.

Label Studio waits for ``/predict`` at most 100 s and stores what it answers, so an annotator's request and a few
opened tasks are answered in the request, and more tasks become a job answered at once, whose workers push the
predictions back through Label Studio's API.  A job can push only with a project, Label Studio's integer task ids
and a Label Studio to reach (a URL and a key).  ``/predict`` without those still answers in the request (bounded by
``INTERACTIVE_DEADLINE``): its answer is the one way back to Label Studio, and what is predicted by then is stored.
The other ways in (the import webhook, ``llm-backend batch``, an evaluation with ``predict``, a job at work) store
nothing from an answer: they queue a job or are refused with a message naming the fix, and a job at work that meets
a refusal fails its tasks with that message, before any LLM call.

The first row that matches decides (``-``: any; ``push blocked``: no project, no Label Studio, or a task without
an integer id, checked in that order):

    ====  ==================  ===========  ==============  =======  ==============  ===============  ===============
    row   way in              interactive  context prompt  prompt   tasks, push     route            reason
    ====  ==================  ===========  ==============  =======  ==============  ===============  ===============
    1     /predict            yes          no              -        -               SUGGEST_NOTHING  SMART_TAG
    2     /predict            yes          yes             -        -               ANSWER_NOW       ANNOTATOR
    3     /predict            no           -               none     -               ANSWER_NOW       NO_PROMPT
    4     /predict            no           -               yes      < min           ANSWER_OPENED    OPENED_TASKS
    5     /predict            no           -               yes      push blocked    ANSWER_NOW       (the blocker)
    6     /predict            no           -               yes      >= min          QUEUE_JOB        BATCH
    7     any other           -            -               none     -               REFUSE           NO_PROMPT
    8     any other           -            -               yes      push blocked    REFUSE           (the blocker)
    9     any other           -            -               yes      -               QUEUE_JOB        BATCH
    ====  ==================  ===========  ==============  =======  ==============  ===============  ===============

``min`` is ``BATCH_MIN_TASKS``.  Row 3 answers each task an error entry saying there is no prompt (Label Studio
logs it per task), without an LLM call.  Row 6 is answered from the answer cache instead when every task's answer
is there.  ``QUEUE_JOB`` may still meet an operator's bound when the job is stored (``MAX_ACTIVE_JOBS_PER_PROJECT``,
``PROJECT_DAILY_USD``: 429).  A refusal raises ``ConfigError`` (no prompt, no Label Studio) or ``InvalidRequest``
(no project, task ids): 400 with a JSON ``error``, exit status 2 for the commands.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from shared.domain.errors import BackendError, ConfigError, InvalidRequest

NO_LABEL_STUDIO_URL_AND_KEY = (
    "no Label Studio URL and key: set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY, or connect the backend from "
    "Label Studio (Settings → Model)"
)
NO_PROMPT = "no prompt: submit one in the prompt TextArea in Label Studio, or set DEFAULT_PROMPT"


class WayIn(enum.StrEnum):
    PREDICT = "/predict"  # Label Studio's call: Retrieve Predictions, an opened task, an annotator's prompt
    AUTO_PREDICT = "import webhook"  # AUTO_PREDICT_ON_IMPORT: the TASKS_CREATED event
    BATCH_COMMAND = "llm-backend batch"
    EVALUATION = "evaluation with predict"
    JOB = "a job at work"  # its chunks and its Batch API submission, which read the project's access afresh


class Route(enum.StrEnum):
    SUGGEST_NOTHING = "suggest nothing"  # an empty prediction per task, no LLM call
    ANSWER_NOW = "answer now"  # predicted in the request
    ANSWER_OPENED = "answer now, through the jobs' ledger"  # in the request, shared with a job of the same version
    QUEUE_JOB = "queue a job"  # the workers predict and push
    REFUSE = "refuse"


class Reason(enum.StrEnum):
    SMART_TAG = "smart tag"
    ANNOTATOR = "annotator"
    NO_PROMPT = "no prompt"
    OPENED_TASKS = "opened tasks"
    NO_PROJECT = "no project"
    NO_LABEL_STUDIO = "no Label Studio"
    TASK_IDS = "task ids"
    BATCH = "batch"


@dataclass(frozen=True)
class Facts:
    """What the decision depends on.  ``label_studio_problem`` is None when Label Studio can be reached with a key,
    else why not (naming the fix); ``batch_min_tasks`` is ``BATCH_MIN_TASKS`` (``/predict`` only)."""

    way_in: WayIn
    project: str | None
    has_prompt: bool
    label_studio_problem: str | None
    tasks: int = 0
    integer_ids: bool = True
    interactive: bool = False
    context_prompt: bool = False
    prompt_error: str | None = None
    batch_min_tasks: int = 0


@dataclass(frozen=True)
class Decision:
    """The route, its reason, and the message that says it (for a refusal: what is wrong and the fix)."""

    route: Route
    reason: Reason
    message: str

    @property
    def refused(self) -> bool:
        return self.route is Route.REFUSE

    def raise_if_refused(self) -> Decision:
        """This decision, unless it is a refusal: then its error (``ConfigError`` or ``InvalidRequest``)."""
        if self.refused:
            raise self.error()
        return self

    def error(self) -> BackendError:
        cls = InvalidRequest if self.reason in (Reason.NO_PROJECT, Reason.TASK_IDS) else ConfigError
        return cls(self.message)


def decide(facts: Facts) -> Decision:
    """The row of the table (module docstring) that matches ``facts``."""
    predict = facts.way_in is WayIn.PREDICT
    if predict and facts.interactive:
        if not facts.context_prompt:
            return Decision(Route.SUGGEST_NOTHING, Reason.SMART_TAG, _SMART_TAG)
        return Decision(Route.ANSWER_NOW, Reason.ANNOTATOR, _ANNOTATOR)
    if not facts.has_prompt:
        message = no_prompt_message(facts.project, facts.prompt_error)
        return Decision(Route.ANSWER_NOW if predict else Route.REFUSE, Reason.NO_PROMPT, message)
    if predict and facts.tasks < facts.batch_min_tasks:
        return Decision(Route.ANSWER_OPENED, Reason.OPENED_TASKS, _opened_tasks(facts.batch_min_tasks))
    blocker = push_blocker(facts)
    if blocker is not None:
        reason, message = blocker
        return Decision(Route.ANSWER_NOW if predict else Route.REFUSE, reason, message)
    return Decision(Route.QUEUE_JOB, Reason.BATCH, _BATCH)


def push_blocker(facts: Facts) -> tuple[Reason, str] | None:
    """Why a job could not push these tasks' predictions to Label Studio, or None."""
    if facts.project is None:
        return Reason.NO_PROJECT, _NO_PROJECT
    if facts.label_studio_problem is not None:
        return Reason.NO_LABEL_STUDIO, f"a job could not push predictions to Label Studio: {facts.label_studio_problem}"
    if not facts.integer_ids:
        return Reason.TASK_IDS, _TASK_IDS
    return None


def no_prompt_message(project: str | None, prompt_error: str | None) -> str:
    """The one message for a project without a prompt: ``prompt_error`` (how the prompt could not be chosen, and the
    fix) when known."""
    detail = prompt_error or NO_PROMPT
    return f"project {project}: {detail}" if project else detail


_SMART_TAG = "the annotator's context holds no prompt (a smart tag): nothing is suggested, nothing they drew replaced"
_ANNOTATOR = "an annotator waits for this answer"
_BATCH = "a job: the workers predict the tasks and push the predictions to Label Studio"
_NO_PROJECT = (
    'the request names no project: a job pushes to a Label Studio project (send "project": "<id>.<timestamp>" as '
    "Label Studio does)"
)
_TASK_IDS = 'not every task has an integer "id": a job pushes to Label Studio\'s tasks by their ids'


def _opened_tasks(batch_min_tasks: int) -> str:
    return f"fewer than BATCH_MIN_TASKS={batch_min_tasks} tasks: answered in the request, as opened tasks"
