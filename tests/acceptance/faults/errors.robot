*** Settings ***
Documentation    I/O errors injected under fio's nbd engine surface as fio errors, and stop when cleared.

Resource         common.resource

Test Tags        acceptance    fault    errors


*** Test Cases ***
Read Errors Surface As Fio Errors With Nbdkit
    [Template]    Read Errors Surface As Fio Errors
    nbdkit

Read Errors Surface As Fio Errors With Python Server
    [Template]    Read Errors Surface As Fio Errors
    python

Write Errors Carry Their Errno
    ${injector}    Start Latency Injector    size=16M    engine=python
    Inject IO Errors    ${injector}    rate=100%    operation=write    errno=ENOSPC
    ${result}    Run Fio Job    nbd_qd1    uri=${injector.uri}    rw=randwrite    runtime=1
    ...    allow_errors=True
    Should Be Equal As Integers    ${result.jobs[0].error}    28

Errors For A Duration Only Then The Workload Is Clean
    ${injector}    Start Latency Injector    size=16M    engine=python
    Inject IO Errors    ${injector}    rate=1.0    operation=read    duration=0.5s
    Sleep    1s
    ${events}    Get Fault Timeline    ${injector}
    Should Be Equal    ${events[-1].action}    clear
    ${result}    Run Fio Job    nbd_qd1    uri=${injector.uri}    runtime=1
    Should Be Equal As Integers    ${result.jobs[0].error}    0

Cleared Errors Stop Failing Requests
    ${injector}    Start Latency Injector    size=16M    engine=nbdkit
    Inject IO Errors    ${injector}    rate=1.0    operation=all
    Clear IO Errors    ${injector}
    ${result}    Run Fio Job    nbd_qd1    uri=${injector.uri}    runtime=1    rw=randrw
    Should Be Equal As Integers    ${result.jobs[0].error}    0


*** Keywords ***
Read Errors Surface As Fio Errors
    [Documentation]    Errors injected while fio runs make the job fail with EIO.
    [Arguments]    ${engine}
    ${injector}    Start Latency Injector    size=16M    engine=${engine}
    ${fio}    Start Read Workload    ${injector}    runtime=5
    Sleep    1s
    Inject IO Errors    ${injector}    rate=0.5    operation=read    errno=EIO
    ${result}    Wait For Fio Job    ${fio}    allow_errors=True
    Should Be Equal As Integers    ${result.jobs[0].error}    5
    Should Be True    ${result.jobs[0].directions['read'].total_ios} > 0
