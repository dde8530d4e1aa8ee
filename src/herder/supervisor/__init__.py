"""The run supervisor: one small long-lived process per data folder that owns local runs.

The herder server does not fork runs itself: if it did, killing the server (SIGKILL, an OOM kill,
a crash) would orphan its runs' pipes and lose how they ended. Instead ``python -m
herder.supervisor DATA_DIR`` runs in its own session (like containerd-shim or conmon, but one per
server), starts every local run, writes its logs and journals its end, and answers a restarted
server about runs it started before.

It speaks newline-delimited JSON over the Unix socket ``DATA_DIR/supervisor.sock``::

    client → supervisor                        supervisor → client
    {"op":"hello"}                             {"op":"hello","pid":N,"live":[run ids],
                                                "features":["mask"]}
    {"op":"spawn","id","argv","env","cwd",     {"op":"started","id","pid"}
     "log_dir","mask"?}                        | {"op":"failed","id","error"}
    {"op":"watch","id","log_dir"}              {"op":"running","id","pid"} and later "exited"
                                               | {"op":"exited","id","exit_code","signal"}
                                               | {"op":"unknown","id"}
    {"op":"kill","id","grace"}                 {"op":"killed","id","found"}
    {"op":"bye"}                               (the supervisor closes the connection)
    anything else, or a bad run id             {"op":"error","error"}

``mask`` lists strings (a run's secrets, in every form they take) replaced by ``***`` in the
run's logs before they are written, and in a ``failed`` error. A supervisor that masks says
``"mask"`` in its hello's ``features``; the client sends no run with secrets to one that does
not (a supervisor left running by an older herder).

``exited`` (``{"op":"exited","id","exit_code","signal","pid"?}``) is also pushed, unasked, to
every connection that spawned or watched the run, once the process group is gone, the logs are
complete and its end is in ``DATA_DIR/exits.jsonl``. A process killed by signal N reports
``signal: N, exit_code: 128 + N``.

Modules: ``protocol`` (names and framing, shared with the client), ``children`` (one run's
process, pipes and log files), ``records`` (the exit journal), ``server``
(the socket and the supervisor's lifetime), ``launch`` and ``client`` (the herder side, used by
``herder.backends.local``). The supervisor's side imports only the standard library (and uvloop
when installed): it starts in well under 100 ms.
"""
