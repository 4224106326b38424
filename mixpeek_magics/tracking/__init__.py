"""Task tracking: the multi-task polling engine and the timeline journal (layer 2).

```python
from mixpeek_magics.tracking import watch, awatch, attach_unfinished, Journal, PollPolicy
h = watch([task.task_id, ...], client=client, block=False)   # polls on the background loop
h.snapshots; h.status; h.progress; h.wait(); h.cancel(); h.detach()
```
No IPython, ipywidgets or pandas here.
"""

from __future__ import annotations

from mixpeek_magics.tracking.engine import (
    Engine,
    PartialFailureWarning,
    TaskFailedError,
    WatchTimeout,
    task_ids_of,
)
from mixpeek_magics.tracking.handle import (
    AsyncWatchHandle,
    WatchHandle,
    aattach_unfinished,
    attach_unfinished,
    awatch,
    watch,
)
from mixpeek_magics.tracking.journal import Journal, default_journal
from mixpeek_magics.tracking.policy import (
    Backoff,
    Clock,
    ManualClock,
    MonotonicClock,
    PollPolicy,
    Scheduler,
)
from mixpeek_magics.tracking.snapshot import TaskSnapshot, WatchObserver

__all__ = [
    "watch",
    "awatch",
    "attach_unfinished",
    "aattach_unfinished",
    "WatchHandle",
    "AsyncWatchHandle",
    "Engine",
    "WatchTimeout",
    "TaskFailedError",
    "PartialFailureWarning",
    "Journal",
    "default_journal",
    "PollPolicy",
    "Backoff",
    "Scheduler",
    "Clock",
    "MonotonicClock",
    "ManualClock",
    "TaskSnapshot",
    "WatchObserver",
    "task_ids_of",
]
