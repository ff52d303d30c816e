*** Settings ***
Documentation    What goes wrong fails clearly, in one line, and never hangs or leaves a server behind.

Resource         common.resource

Test Tags        acceptance    fault    negative


*** Variables ***
# Values Robot refuses before the keyword runs (the arguments are an enum and a timedelta).
${BAD_ENGINE}       ValueError: Argument 'engine' got value 'spdk' that cannot be converted to InjectorEngine:
...                 InjectorEngine does not have member 'spdk'. Available: 'auto', 'nbdkit' and 'python'
${BAD_TRANSPORT}    ValueError: Argument 'transport' got value 'rdma' that cannot be converted to Transport or None.
${BAD_DURATION}     ValueError: Argument 'duration' got value 'soon' that cannot be converted to timedelta or None.


*** Test Cases ***
Missing Nbdkit Is A Clear Failure
    Run Keyword And Expect Error    nbdkit not found (program 'nbdkit-bogus'): install the packages*
    ...    Start Latency Injector    size=16M    engine=nbdkit    nbdkit=nbdkit-bogus

Bad Injector Options Are Refused
    Run Keyword And Expect Error    ${BAD_ENGINE}
    ...    Start Latency Injector    size=16M    engine=spdk
    Run Keyword And Expect Error    size 'lots' is not a size*
    ...    Start Latency Injector    size=lots    engine=python
    Run Keyword And Expect Error    ${BAD_TRANSPORT}
    ...    Start Latency Injector    size=16M    engine=python    transport=rdma

Bad Latency Parameters Are Refused
    ${injector}    Start Latency Injector    size=16M    engine=python
    Run Keyword And Expect Error    read delay '-100ms' is negative
    ...    Inject Latency Spike    ${injector}    read=-100ms
    Run Keyword And Expect Error    no delay given*
    ...    Inject Latency Spike    ${injector}
    Run Keyword And Expect Error    ${BAD_DURATION}
    ...    Inject Latency Spike    ${injector}    read=1ms    duration=soon
    Run Keyword And Expect Error    duration 11 s is longer than the period (every) 10 s
    ...    Start Fault Schedule    ${injector}    delay=10ms    duration=11s    every=10s
    ${events}    Get Fault Timeline    ${injector}
    Length Should Be    ${events}    1

Bad Error Parameters Are Refused
    ${injector}    Start Latency Injector    size=16M    engine=python
    Run Keyword And Expect Error    unknown operation 'readz'*
    ...    Inject IO Errors    ${injector}    operation=readz
    Run Keyword And Expect Error    unknown errno name 'EBOGUS'*
    ...    Inject IO Errors    ${injector}    errno=EBOGUS
    Run Keyword And Expect Error    errno EAGAIN cannot be sent over NBD*
    ...    Inject IO Errors    ${injector}    errno=EAGAIN
    Run Keyword And Expect Error    error rate '2' is not between 0 and 1*
    ...    Inject IO Errors    ${injector}    rate=2

Port In Use Is A Clear Failure
    ${first}    Start Latency Injector    size=16M    engine=python    transport=tcp
    Run Keyword And Expect Error    port 127.0.0.1:${first.port} is in use
    ...    Start Latency Injector    size=16M    engine=nbdkit    transport=tcp    port=${first.port}

Injector Killed Mid Run Fails The Next Keyword
    [Timeout]    1 min
    ${injector}    Start Latency Injector    size=16M    engine=nbdkit
    ${fio}    Start Read Workload    ${injector}    runtime=30
    Sleep    1s
    Kill Injector Process    ${injector}
    Run Keyword And Expect Error    *is no longer running (killed by signal 9*
    ...    Inject Latency Spike    ${injector}    read=10ms
    Run Keyword And Expect Error    *is no longer running*
    ...    Injector Should Be Alive    ${injector}
    ${result}    Wait For Fio Job    ${fio}    timeout=20s    allow_errors=True
    Should Not Be Equal As Integers    ${result.jobs[0].error}    0

Schedule On A Dead Injector Reports It
    [Timeout]    1 min
    ${injector}    Start Latency Injector    size=16M    engine=python
    ${schedule}    Start Fault Schedule    ${injector}    delay=10ms    duration=0.3s    every=0.5s    count=4
    Kill Injector Process    ${injector}
    Run Keyword And Expect Error    *stopped: *is no longer running*
    ...    Wait For Fault Schedule    ${schedule}    timeout=10s

Left Running Injectors Are Stopped At Test End
    ${injector}    Start Latency Injector    size=16M    engine=nbdkit
    Start Fault Schedule    ${injector}    delay=10ms    duration=1s    every=2s
    VAR    ${LEFT_PID}    ${injector.process.pid}    scope=SUITE
    VAR    ${LEFT_DIR}    ${injector.run_dir}    scope=SUITE

Previous Test Left Nothing Behind
    Process Should Be Gone    ${LEFT_PID}
    Directory Should Not Exist    ${LEFT_DIR}
