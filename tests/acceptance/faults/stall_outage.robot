*** Settings ***
Documentation    Stalls of the NBD injectors and the outage verdict, with fio's nbd engine on this host
...              (no VM): a stall shows as one completion gap of its length, the verdict passes a
...              limit above it and fails one below it naming the fault, metric, value and limit;
...              bad input is one line.

Resource         common.resource
Library          VmLibrary

Test Tags        fault    stall    acceptance


*** Test Cases ***
A Stall Is One Gap Of Its Length With Nbdkit
    [Template]    A Stall Is One Gap Of Its Length
    nbdkit

A Stall Is One Gap Of Its Length With Python Server
    [Template]    A Stall Is One Gap Of Its Length
    python

Bad Stall And Outage Input Is One Line
    ${injector}    Start Latency Injector    size=16M    engine=python
    Run Keyword And Expect Error    stall '0.0' is not positive
    ...    Stall IO    ${injector}    0
    Run Keyword And Expect Error    stall '-1.0' is negative
    ...    Stall IO    ${injector}    -1
    ${fio}    Start Read Workload    ${injector}    runtime=2    log_avg_msec=0    log_unix_epoch=1
    ${result}    Wait For Fio Job    ${fio}
    Run Keyword And Expect Error    no outage limit given (use max_gap_ms, max_io_errors, max_resume_s, max_restarts)
    ...    Fault Outage Should Be Within    ${result}    ${EMPTY}
    ${averaged}    Run Fio Job    nbd_qd1    uri=${injector.uri}    runtime=1
    Run Keyword And Expect Error    an outage is measured on a log with one line per I/O*
    ...    Fault Outage Should Be Within    ${averaged}    max_gap_ms=1

Bad Dual Port And Timeout Options Are One Line
    Run Keyword And Expect Error    paths '5' of an NVMe controller must be a whole number from 1 to 4
    ...    Launch NVMe VM    name=bad-paths    paths=5
    Run Keyword And Expect Error    io_timeout 1.5 s is not a whole number of seconds*
    ...    Launch NVMe VM    name=bad-timeout    io_timeout=1.5s
    Run Keyword And Expect Error    layout= describes every namespace: put paths= inside the layout*
    ...    Launch NVMe VM    name=bad-layout    layout=[["64M"]]    paths=2


*** Keywords ***
A Stall Is One Gap Of Its Length
    [Documentation]    QD1 reads for 5 s, every I/O logged, with a 1 s stall 2 s in.
    [Arguments]    ${engine}
    ${injector}    Start Latency Injector    size=64M    engine=${engine}
    ${fio}    Start Read Workload    ${injector}    runtime=5    log_avg_msec=0    log_unix_epoch=1
    Sleep    2s
    Stall IO    ${injector}    1s
    ${result}    Wait For Fio Job    ${fio}
    ${events}    Get Fault Timeline    ${injector}
    ${outages}    Fault Outage Should Be Within    ${result}    ${events}    max_gap_ms=1500    max_io_errors=0
    Should Be True    ${outages}[0][gap_ms] >= 950    the stall was not seen: ${outages}
    Run Keyword And Expect Error
    ...    1 fault outage limit(s) broken:\nfault 'stall 1 s' at *: max_gap_ms is * ms, above the limit 500 ms
    ...    Fault Outage Should Be Within
    ...    ${result}
    ...    ${events}
    ...    max_gap_ms=500
