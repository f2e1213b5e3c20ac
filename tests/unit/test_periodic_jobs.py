"""The supervisor's periodic jobs run on one ``schedule.Scheduler``, and one failing job stops none of the others."""

from __future__ import annotations

import threading
import time

from orgctl.runtime.supervisor import Supervisor, periodic_jobs


class Host:
    """The parts of a Supervisor the periodic jobs call, counting the calls; the batch always fails."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {"batch": 0, "schedule": 0, "sweep": 0, "keep-alive": 0, "workflows": 0}
        self._stopping = threading.Event()

    def commit_memory(self) -> None:
        self.calls["batch"] += 1
        raise RuntimeError("the remote is down")

    def memory_schedule(self):  # type: ignore[no-untyped-def]
        return lambda: self.calls.__setitem__("schedule", self.calls["schedule"] + 1)

    def sweep(self) -> None:
        self.calls["sweep"] += 1

    def drive_workflows(self) -> None:
        self.calls["workflows"] += 1

    def unload_idle_model(self, keep: float) -> None:
        self.calls["keep-alive"] += 1


def test_jobs_and_their_intervals() -> None:
    jobs = periodic_jobs(Host(), batch_every=300, keep_alive=300)  # type: ignore[arg-type]
    assert {next(iter(j.tags)): j.interval for j in jobs.jobs} == {
        "memory-batch": 300, "memory-schedule": 60, "sweep": 30, "workflows": 3, "model-keep-alive": 60}
    assert "model-keep-alive" not in {next(iter(j.tags)) for j in
                                      periodic_jobs(Host(), batch_every=300, keep_alive=float("inf")).jobs}  # type: ignore[arg-type]


def test_a_failing_job_runs_again_and_the_others_go_on() -> None:
    host = Host()
    jobs = periodic_jobs(host, batch_every=1, keep_alive=2)  # type: ignore[arg-type]
    for job in jobs.jobs:  # all due at once
        job.next_run = job.next_run.replace(year=2000)
    runner = threading.Thread(target=Supervisor.run_periodic, args=(host, jobs))
    runner.start()
    time.sleep(3.5)
    host._stopping.set()
    runner.join(5)
    assert host.calls["batch"] >= 2  # it failed every time and was run again at its next time
    assert host.calls["schedule"] >= 1 and host.calls["sweep"] >= 1 and host.calls["keep-alive"] >= 1
    assert host.calls["workflows"] >= 1
