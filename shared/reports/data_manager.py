"""Links into Label Studio's Data Manager, so a report's task ids open where the team can look at them.

Label Studio 1.23's Data Manager (``web/libs/datamanager``: ``AppStore.fetchData`` and ``Tabs/store.fetchTabs``)
reads two URL parameters on ``/projects/<id>/data``: ``tab``, a saved view's id, and ``task``, a task it opens in
the labeling pane (``startLabeling``).  Filters live in saved views on the server, not in the URL (only the
Enterprise ``labelops`` mode builds virtual tabs from it), so a link opens one task; without ``tab`` the
project's first view is shown behind it.
"""

from __future__ import annotations

from urllib.parse import urlencode


def project_url(label_studio_url: str, project: int | str) -> str:
    """The project's Data Manager."""
    return f"{label_studio_url.rstrip('/')}/projects/{project}/data"


def task_url(label_studio_url: str, project: int | str, task_id: int | str) -> str:
    """The Data Manager with ``task_id`` open in its labeling pane: annotations and predictions side by side."""
    return f"{project_url(label_studio_url, project)}?{urlencode({'task': task_id})}"
