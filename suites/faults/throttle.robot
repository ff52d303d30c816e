*** Settings ***
Documentation    QoS throttling of an NVMe namespace with a QEMU throttle group, changed live while
...              fio runs in the guest: the IOPS fio measures under the limit match it (±5 %), and
...              after the limit is cleared the workload is back at its baseline within a few
...              seconds. Both verdicts are also shown to fail when the limit is not what was set.

Resource         ../../resources/faults.resource

Suite Setup      Launch Throttle VM

Test Tags        fault    qos    vm


*** Variables ***
${LIMIT}                     300
${TOLERANCE}                 5
${RECOVERY_S}                3
# Recovered = IOPS back to at least half the baseline (and latency within 50 % or 1 ms of it) for
# two windows: a TCG guest beside another busy VM (two pabot workers on two cores) swings that much.
${RECOVERY_TOLERANCE_PCT}    50
${VM}                        ${None}
${RESULT}                    ${None}
${EVENTS}                    ${None}


*** Test Cases ***
Throttling Honoured
    [Documentation]    ${LIMIT} IOPS set about 3.5 s into the run, cleared 5 s later.
    ${result}    ${events}    Run Workload With Throttle
    ${limits}    Get IO Throttle    ${VM}    nvme0
    Should Be Equal As Integers    ${limits}[nvme0n1][iops-total]    0
    IO Throttle Should Be Honoured    ${result}    ${events}    tolerance_pct=${TOLERANCE}
    Fault Impact Should Be Within
    ...    ${result}
    ...    ${events}
    ...    max_recovery_s=${RECOVERY_S}
    ...    tolerance_pct=${RECOVERY_TOLERANCE_PCT}
    VAR    ${RESULT}    ${result}    scope=SUITE
    VAR    ${EVENTS}    ${events}    scope=SUITE

A Throttle Off By More Than The Tolerance Fails
    [Documentation]    Negative proof on the same run: judged against a limit 10 % above the one
    ...    set, the throttle verdict fails; a drop limit the throttle exceeds fails the impact verdict.
    Skip If    $RESULT is None    the throttled run did not complete
    ${wrong}    Evaluate    int(${LIMIT} * 1.1)
    Run Keyword And Expect Error    *% off the limit ${wrong} IOPS (tolerance ±${TOLERANCE} %)*
    ...    IO Throttle Should Be Honoured    ${RESULT}    ${EVENTS}    iops=${wrong}    tolerance_pct=${TOLERANCE}
    Run Keyword And Expect Error    *max_iops_drop_pct is *above the limit 50 %*
    ...    Fault Impact Should Be Within    ${RESULT}    ${EVENTS}    max_iops_drop_pct=50


*** Keywords ***
Run Workload With Throttle
    [Documentation]    Start the workload, throttle it to ${LIMIT} IOPS for 5 s in its middle, clear;
    ...    return the result and the VM's fault timeline.
    ${fio}    Start Timed Fio Job On VM    ${VM}    ${FAULT_JOBS}/fault_workload.fio    runtime=14
    Sleep    5s
    Set IO Throttle    ${VM}    nvme0    iops=${LIMIT}
    ${limits}    Get IO Throttle    ${VM}    nvme0
    Should Be Equal As Integers    ${limits}[nvme0n1][iops-total]    ${LIMIT}
    Sleep    5s
    Clear IO Throttle    ${VM}    nvme0
    ${result}    Wait For Timed Fio Job On VM    ${fio}
    ${events}    Get VM Fault Timeline    ${VM}
    RETURN    ${result}    ${events}

Launch Throttle VM
    [Documentation]    One VM with one 256 MiB namespace for the suite.
    ${vm}    Launch NVMe VM    name=throttle    size=256M
    VAR    ${VM}    ${vm}    scope=SUITE
