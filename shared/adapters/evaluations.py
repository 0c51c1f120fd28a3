"""Evaluation runs in Redis, and their scores on ``/metrics``: the only module that touches ``eval*`` keys.

A run is one JSON record (``eval:<id>``), listed per project newest first; a project keeps its latest
``RUNS_KEPT`` runs (``shared.adapters.kept_runs``).  When a run is done, each version it scored becomes that
(project, version)'s latest scores (``project:<id>:eval-scores``), which ``/metrics`` exports as
``llm_backend_eval_score``: a dashboard then follows a project's prompt versions without rerunning anything.
Scores leave with the run that made them, so the series stay within two versions per kept run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shared.adapters.kept_runs import KeptRuns
from shared.adapters.replies import text_dict, text_set
from shared.adapters.store import Store
from shared.domain.evaluation.run import EvaluationRun, RunState

METRIC = "llm_backend_eval_score"


class EvaluationStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.redis = store.redis
        self.runs = KeptRuns(store, "eval", "evaluations", EvaluationRun.from_dict)

    def _scores(self, project: str) -> str:
        return self.store.key("project", project, "eval-scores")

    def save(self, run: EvaluationRun) -> None:
        """Keep the run (again, after a change of state); a finished run's scores become the latest for their
        (project, version).  Runs beyond the project's ``RUNS_KEPT`` newest are dropped."""
        pipe = self.redis.pipeline(transaction=True)
        self.runs.write(pipe, run)
        if run.state == RunState.DONE:
            for score in run.scores:
                flat = [[control, metric, value] for (control, metric), value in score.evaluation.flat().items()]
                pipe.hset(self._scores(run.project), score.version, json.dumps({"run": run.id, "scores": flat}))
            pipe.sadd(self.store.key("eval-projects"), run.project)
        pipe.execute()
        self._trim(run.project)

    def _trim(self, project: str) -> None:
        """Drop the runs beyond the newest ``RUNS_KEPT``, and with them the scores they exported (a version
        named only by a dropped run leaves ``/metrics``), so a project's series stay bounded."""
        old = self.runs.beyond_kept(project)
        if not old:
            return
        dropped = set(old)
        scored_by = {
            version: json.loads(raw)["run"]
            for version, raw in text_dict(self.redis.hgetall(self._scores(project))).items()
        }
        pipe = self.redis.pipeline(transaction=True)
        self.runs.drop(pipe, project, old)
        versions = [version for version, run_id in scored_by.items() if run_id in dropped]
        if versions:
            pipe.hdel(self._scores(project), *versions)
        pipe.execute()

    def get(self, run_id: str) -> EvaluationRun | None:
        return self.runs.get(run_id)

    def recent(self, project: str, limit: int = 20) -> list[EvaluationRun]:
        """The project's runs, newest first."""
        return self.runs.recent(project, limit)

    def latest_scores(self) -> Iterator[tuple[str, str, str, str, float]]:
        """``(project, version, control, metric, value)`` of each (project, version)'s latest finished run."""
        for project in sorted(text_set(self.redis.smembers(self.store.key("eval-projects")))):
            for version, raw in sorted(text_dict(self.redis.hgetall(self._scores(project))).items()):
                for control, metric, value in json.loads(raw)["scores"]:
                    yield project, version, control, metric, float(value)


class EvaluationScores(Collector):
    """``llm_backend_eval_score{project,version,control,metric}``: the latest evaluation of each prompt version."""

    def __init__(self, evaluations: EvaluationStore) -> None:
        self.evaluations = evaluations

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            METRIC,
            "Latest evaluation of a model version against the ground truth, per control and metric "
            '(coverage counts under control "(coverage)")',
            labels=["project", "version", "control", "metric"],
        )
        for project, version, control, metric, value in self.evaluations.latest_scores():
            family.add_metric([project, version, control, metric], value)
        yield family
