*** Settings ***
Documentation    Latency spikes through fio's nbd engine: they appear in fio's per-second log where
...              the fault timeline says they happened, with the injected size (±5 %), for both engines.

Resource         common.resource

Test Tags        acceptance    fault    latency


*** Variables ***
${NO_UNIT}    read delay '100' has no unit: write 100ms for milliseconds (100s if you really mean seconds;
...           at most 3600 s)


*** Test Cases ***
Spike With Nbdkit
    [Template]    Spike Appears In Fio Log
    nbdkit    100ms

Spike With Python Server
    [Template]    Spike Appears In Fio Log
    python    100ms

Small Spike With Python Server
    [Template]    Spike Appears In Fio Log
    python    20ms

The Check Catches A Wrong Size Or Time
    [Documentation]    The log check is not a rubber stamp: a spike of another size, or one the
    ...    timeline places more than a second off, fails it.
    ${result}    ${events}    Run Workload With Spike    python    50ms    log_avg_msec=0
    Latency Log Should Show Spikes    ${result}    ${events}    50ms
    Run Keyword And Expect Error    *not within 5%*
    ...    Latency Log Should Show Spikes    ${result}    ${events}    60ms
    ${late}    Shift Events    ${events}    1.2
    Run Keyword And Expect Error    *
    ...    Latency Log Should Show Spikes    ${result}    ${late}    50ms
    ${early}    Shift Events    ${events}    -1.2
    Run Keyword And Expect Error    *
    ...    Latency Log Should Show Spikes    ${result}    ${early}    50ms

A Delay Without A Unit Is Refused
    [Documentation]    read=100 would be 100 s, never what is meant: it is refused with the fix, as are
    ...    a delay over the one-hour cap and a compensation of 10 ms or more; nothing is applied.
    ${injector}    Start Latency Injector    size=16M    engine=python
    Run Keyword And Expect Error    ${NO_UNIT}
    ...    Inject Latency Spike    ${injector}    read=100
    Run Keyword And Expect Error    write delay '7200s' is longer than the 3600 s (1 h) maximum
    ...    Inject Latency Spike    ${injector}    write=7200s
    Run Keyword And Expect Error    compensation '0.6' has no unit: write 0.6ms for milliseconds*
    ...    Set Latency Compensation    ${injector}    0.6
    Run Keyword And Expect Error    latency compensation 10 ms is not between 0 and 10 ms
    ...    Set Latency Compensation    ${injector}    10ms
    Inject Latency Spike    ${injector}    read=100 milliseconds    duration=1
    ${events}    Get Fault Timeline    ${injector}
    Should Be Equal As Numbers    ${events[-1].params['read']}    0.1
    Should Be Equal As Numbers    ${events[-1].params['duration']}    1

Clear Latency Ends A Spike At Once And Leaves Errors
    [Documentation]    A spike without a duration lasts until Clear Latency: after it reads are fast
    ...    again, while the I/O errors injected beside it still fail writes.
    ${injector}    Start Latency Injector    size=16M    engine=nbdkit
    Inject Latency Spike    ${injector}    read=200ms
    Inject IO Errors    ${injector}    rate=100%    operation=write    errno=ENOSPC
    Clear Latency    ${injector}
    ${events}    Get Fault Timeline    ${injector}
    Should Be Equal    ${events[-1].kind}    latency
    Should Be Equal    ${events[-1].action}    clear
    Mean Read Latency Should Be Within    ${injector}    0ms    20ms
    ${writes}    Run Fio Job    nbd_qd1    uri=${injector.uri}    rw=randwrite    runtime=1
    ...    allow_errors=True
    Should Be Equal As Integers    ${writes.jobs[0].error}    28

Latency Compensation Is Taken Off The Delay
    [Documentation]    9 ms of compensation takes the active 30 ms spike down to 21 ms at once: fio
    ...    measures less than the 28 ms an uncompensated spike cannot go below, even with the server's
    ...    2 ms early wake-up. 0 turns it off again. Each change is on the fault timeline.
    ${injector}    Start Latency Injector    size=16M    engine=nbdkit
    Inject Latency Spike    ${injector}    read=30ms
    Set Latency Compensation    ${injector}    9ms
    Mean Read Latency Should Be Within    ${injector}    19ms    28ms
    Set Latency Compensation    ${injector}    0
    Mean Read Latency Should Be Within    ${injector}    28ms    60ms
    ${events}    Get Fault Timeline    ${injector}
    Should Be Equal    ${events[2].action}    compensation
    Should Be Equal As Numbers    ${events[2].params['seconds']}    0.009
    Should Be Equal As Numbers    ${events[3].params['seconds']}    0

A Backing File Is Checked Before The Injector Starts
    [Documentation]    A missing folder is named in one line; no run folder or file is created.
    VAR    ${runs}    ${OUTPUT DIR}${/}injector-runs-${{__import__("uuid").uuid4().hex[:8]}}
    Create Directory    ${runs}
    Set Environment Variable    NVMECHAOS_RUN_DIR    ${runs}
    Run Keyword And Expect Error    cannot create backing file '/proc/x/disk.img': folder '/proc/x' does not exist
    ...    Start Latency Injector    backing=/proc/x/disk.img    size=16M    engine=python
    Run Keyword And Expect Error    backing '${runs}' is not a regular file
    ...    Start Latency Injector    backing=${runs}    engine=nbdkit
    Run Keyword And Expect Error    injector name 'a/b' must be 1-64 letters, digits, '.', '_' or '-'*
    ...    Start Latency Injector    size=16M    engine=python    name=a/b
    Run Keyword And Expect Error    port 10809 is for transport\=tcp (this injector uses a unix socket)
    ...    Start Latency Injector    size=16M    engine=python    transport=unix    port=10809
    Directory Should Be Empty    ${runs}
    [Teardown]    Remove Environment Variable    NVMECHAOS_RUN_DIR


*** Keywords ***
Spike Appears In Fio Log
    [Documentation]    A spike with a duration in the middle of a running job, checked against the log.
    [Arguments]    ${engine}    ${delay}
    ${result}    ${events}    Run Workload With Spike    ${engine}    ${delay}    log_avg_msec=0
    Latency Log Should Show Spikes    ${result}    ${events}    ${delay}

Mean Read Latency Should Be Within
    [Documentation]    QD1 reads through the injector for 2 s: fio's mean completion latency is
    ...    between ${low} and ${high} (Robot times).
    [Arguments]    ${injector}    ${low}    ${high}
    ${result}    Run Fio Job    nbd_qd1    uri=${injector.uri}    runtime=2    nice=${FIO_NICE}
    Mean Latency Should Be Within    ${result}    ${low}    ${high}
