*** Settings ***
Documentation    A fault schedule repeats latency spikes during a running workload; each one shows in
...              fio's per-second log where the timeline puts it.

Resource         common.resource

Test Tags        acceptance    fault    latency    schedule


*** Variables ***
# A value Robot refuses before the keyword runs (the timeout is a timedelta).
${BAD_TIMEOUT}    ValueError: Argument 'timeout' got value 'soon' that cannot be converted to timedelta:
...               Invalid time string 'soon'.


*** Test Cases ***
Scheduled Spikes Appear In Fio Log
    ${injector}    Start Latency Injector    size=64M    engine=python
    ${fio}    Start Read Workload    ${injector}    runtime=12    log_avg_msec=0
    Sleep    1.5s
    ${schedule}    Start Fault Schedule    ${injector}    delay=50ms    duration=2.5s    every=4.5s    count=2
    Wait For Fault Schedule    ${schedule}    timeout=30s
    ${result}    Wait For Fio Job    ${fio}
    ${events}    Get Fault Timeline    ${injector}
    Latency Log Should Show Spikes    ${result}    ${events}    50ms
    Stop Fault Schedule    ${schedule}

Stopping A Schedule Clears Its Fault
    ${injector}    Start Latency Injector    size=16M    engine=nbdkit
    ${schedule}    Start Fault Schedule    ${injector}    delay=200ms    duration=5s    every=10s
    Sleep    0.3s
    Stop Fault Schedule    ${schedule}
    ${events}    Get Fault Timeline    ${injector}
    Should Be Equal    ${events[-1].action}    clear
    ${result}    Run Fio Job    nbd_qd1    uri=${injector.uri}    runtime=1
    Should Be True    ${result.jobs[0].directions['read'].clat.mean_ns} < 20000000

Fault Windows Line Up With The Workload
    ${injector}    Start Latency Injector    size=16M    engine=python
    ${fio}    Start Read Workload    ${injector}    runtime=2
    Inject Latency Spike    ${injector}    read=20ms    duration=0.5s
    Sleep    0.7s
    Inject IO Errors    ${injector}    rate=10%    operation=write    errno=ENOSPC
    ${windows}    Get Fault Windows    ${injector}    origin=${fio.started_monotonic}
    Wait For Fio Job    ${fio}
    Windows Should Be    ${windows}    read 20 ms    ENOSPC 10 % write
    Should Be True    0 <= ${windows[0][0]} < 0.5
    Should Be True    0.45 < ${windows[0][1]} - ${windows[0][0]} < 0.6

Fault Plan From YAML Runs In Order
    ${injector}    Start Latency Injector    size=16M    engine=nbdkit
    ${schedule}    Start Fault Plan    ${injector}    ${CURDIR}/data/plan.yaml
    Wait For Fault Schedule    ${schedule}    timeout=10s
    ${windows}    Get Fault Windows    ${injector}
    Windows Should Be    ${windows}    read 50 ms, write 50 ms    EIO 50 % write
    Should Be True    0.15 < ${windows[1][0]} - ${windows[0][0]} < 0.25

Bad Fault Plan Names File Window And Key
    ${injector}    Start Latency Injector    size=16M    engine=python
    Run Keyword And Expect Error    *bad_plan.yaml, window 2: unknown key 'raed'*
    ...    Start Fault Plan    ${injector}    ${CURDIR}/data/bad_plan.yaml

Bad Schedule Arguments Are One Clear Line
    ${injector}    Start Latency Injector    size=16M    engine=python
    Run Keyword And Expect Error    delay '100' has no unit: write 100ms for milliseconds*
    ...    Start Fault Schedule    ${injector}    delay=100    duration=1s    every=2s
    Run Keyword And Expect Error    errno belongs to error_rate schedules, not to delay
    ...    Start Fault Schedule    ${injector}    delay=10ms    errno=ENOSPC    duration=1s    every=2s
    ${schedule}    Start Fault Schedule    ${injector}    delay=10ms    duration=0.2s    every=0.3s    count=1
    Run Keyword And Expect Error    ${BAD_TIMEOUT}
    ...    Wait For Fault Schedule    ${schedule}    timeout=soon
    Wait For Fault Schedule    ${schedule}    timeout=1 minute
    Run Keyword And Expect Error    'x' is not a fault schedule (use the handle `Start Fault Schedule` returned)
    ...    Wait For Fault Schedule    x
    Run Keyword And Expect Error    'x' is not a fault schedule*
    ...    Stop Fault Schedule    x

A Plan Delay Without A Unit Is Refused
    ${injector}    Start Latency Injector    size=16M    engine=python
    VAR    &{window}    at=0s    duration=1s    read=50
    Run Keyword And Expect Error    fault plan, window 1: read delay '50' has no unit: write 50ms*
    ...    Start Fault Plan    ${injector}    ${{[$window]}}


*** Keywords ***
Windows Should Be
    [Documentation]    The windows carry these labels, in this order.
    [Arguments]    ${windows}    @{labels}
    ${actual}    Evaluate    [window[2] for window in $windows]
    Lists Should Be Equal    ${actual}    ${labels}
