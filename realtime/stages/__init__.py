"""The pipeline's five stages, one module each, in data order:

    capture  -> pose (x N workers) -> assemble -> infer -> publish

Each module's ``run(child, settings, ...)`` is the body of one process; `realtime.stages.child` is the
plumbing every body shares (stop/parent checks, events to the supervisor, counters) and
`realtime.supervisor` starts and watches the processes.
"""
