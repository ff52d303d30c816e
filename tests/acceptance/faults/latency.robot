*** Settings ***
Documentation    Latency spikes through fio's nbd engine: they appear in fio's per-second log where
...              the fault timeline says they happened, with the injected size (±5 %), for both engines.

Resource         common.resource

Test Tags        acceptance    fault    latency


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
    ${result}    ${events}    Run Workload With Spike    python    50ms
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
    ${result}    ${events}    Run Workload With Spike    ${engine}    ${delay}
    Latency Log Should Show Spikes    ${result}    ${events}    ${delay}
