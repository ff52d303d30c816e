*** Settings ***
Documentation       Latency spikes through fio's nbd engine: they appear in fio's per-second log where
...                 the fault timeline says they happened, with the injected size (±5 %), for both engines.
Resource            common.resource

Test Tags           acceptance    fault    latency
Test Template       Spike Appears In Fio Log


*** Test Cases ***    ENGINE    DELAY
Spike With Nbdkit    nbdkit    100ms
Spike With Python Server    python    100ms
Small Spike With Python Server    python    20ms

The Check Catches A Wrong Size Or Time
    [Documentation]    The log check is not a rubber stamp: a spike of another size, or one the
    ...    timeline places a second off, fails it.
    [Template]    NONE
    ${injector}    Start Latency Injector    size=64M    engine=python
    ${fio}    Start Read Workload    ${injector}
    Sleep    2.5s
    Inject Latency Spike    ${injector}    read=50ms    duration=3s
    ${result}    Wait For Fio Job    ${fio}
    ${events}    Get Fault Timeline    ${injector}
    Latency Log Should Show Spikes    ${result}    ${events}    50ms
    Run Keyword And Expect Error    *not within 5%*
    ...    Latency Log Should Show Spikes    ${result}    ${events}    60ms
    ${late}    Shift Events    ${events}    1.2
    Run Keyword And Expect Error    *
    ...    Latency Log Should Show Spikes    ${result}    ${late}    50ms
    ${early}    Shift Events    ${events}    -1.2
    Run Keyword And Expect Error    *
    ...    Latency Log Should Show Spikes    ${result}    ${early}    50ms


*** Keywords ***
Spike Appears In Fio Log
    [Documentation]    A spike with a duration in the middle of a running job, checked against the log.
    [Arguments]    ${engine}    ${delay}
    ${injector}    Start Latency Injector    size=64M    engine=${engine}
    ${fio}    Start Read Workload    ${injector}
    Sleep    2.5s
    Inject Latency Spike    ${injector}    read=${delay}    duration=3s
    ${result}    Wait For Fio Job    ${fio}
    ${events}    Get Fault Timeline    ${injector}
    Latency Log Should Show Spikes    ${result}    ${events}    ${delay}
    Stop Injector    ${injector}
