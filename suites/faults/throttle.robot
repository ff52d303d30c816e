*** Settings ***
Documentation    QoS throttling of an NVMe namespace with a QEMU throttle group, changed live while
...              fio runs in the guest: the IOPS fio measures under the limit match it (±5 %), and
...              after the limit is cleared the workload is back within its baseline's noise band
...              within a few seconds. Each verdict is also shown to fail, on a run of its own, for
...              the reason it names: a throttle that lets more through than its limit, a throttle
...              deeper than the drop limit, a throttle never cleared.
...
...              Every I/O is logged (&{EVERY_IO}) so that the verdicts see exact 500 ms windows, 16 in the
...              ${BASELINE} baseline.

Resource         ../../resources/faults.resource

Suite Setup      Launch Throttle VM

Test Tags        fault    qos    vm


*** Variables ***
${LIMIT}           300
${TOLERANCE}       5
${RECOVERY_S}      3
# A throttle that lets 20 % more through than ${LIMIT}, far outside the ±${TOLERANCE} % tolerance.
${LEAKY_LIMIT}     360
# A throttle that cuts any baseline this guest reaches (500+ IOPS at QD4) by more than ${MAX_DROP_PCT} %.
${DEEP_LIMIT}      50
${MAX_DROP_PCT}    50
${BASELINE}        8s
# After fio does I/O, the time before the throttle: the baseline plus fio's first window.
${LEAD}            9s
${THROTTLED}       5s
${RUNTIME}         21
${VM}              ${None}


*** Test Cases ***
Throttling Honoured
    [Documentation]    ${LIMIT} IOPS set ${LEAD} into the run, cleared ${THROTTLED} later: the IOPS
    ...    under the throttle match the limit and the workload recovers within ${RECOVERY_S} s.
    ${result}    ${events}    Run Workload With Throttle    ${LIMIT}
    Namespace Throttle Should Be    0
    IO Throttle Should Be Honoured    ${result}    ${events}    tolerance_pct=${TOLERANCE}
    Fault Impact Should Be Within    ${result}    ${events}    max_recovery_s=${RECOVERY_S}
    ...    baseline=${BASELINE}

A Throttle Off By More Than The Tolerance Fails
    [Documentation]    Negative proof on its own run: the throttle is set to ${LEAKY_LIMIT} IOPS and
    ...    judged as the ${LIMIT} IOPS it should be: the throttle verdict fails, measuring +20 %.
    ${result}    ${events}    Run Workload With Throttle    ${LEAKY_LIMIT}
    Run Keyword And Expect Error
    ...    *measured * IOPS is +* % off the limit ${LIMIT} IOPS (tolerance ±${TOLERANCE} %)
    ...    IO Throttle Should Be Honoured    ${result}    ${events}    iops=${LIMIT}    tolerance_pct=${TOLERANCE}

A Throttle Deeper Than The Drop Limit Fails
    [Documentation]    Negative proof on its own run: a ${DEEP_LIMIT} IOPS throttle breaks
    ...    max_iops_drop_pct=${MAX_DROP_PCT}, the one limit the impact verdict is given.
    ${result}    ${events}    Run Workload With Throttle    ${DEEP_LIMIT}
    VAR    ${expected}    1 fault impact limit(s) broken:\nfault 'throttle *' at *:
    ...    max_iops_drop_pct is * %, above the limit ${MAX_DROP_PCT} %
    Run Keyword And Expect Error    ${expected}
    ...    Fault Impact Should Be Within    ${result}    ${events}    max_iops_drop_pct=${MAX_DROP_PCT}
    ...    baseline=${BASELINE}

A Throttle Never Cleared Never Recovers
    [Documentation]    Negative proof on its own run: the throttle is still on when fio ends, so the
    ...    workload cannot have recovered: the recovery verdict fails and says so.
    ${result}    ${events}    Run Workload With Throttle    ${LIMIT}    clear=${False}
    VAR    ${expected}    1 fault impact limit(s) broken:\nfault 'throttle *' at *:
    ...    never recovered: the fault was still active when the run ended (limit max_recovery_s ${RECOVERY_S} s)
    Run Keyword And Expect Error    ${expected}
    ...    Fault Impact Should Be Within    ${result}    ${events}    max_recovery_s=${RECOVERY_S}
    ...    baseline=${BASELINE}
    [Teardown]    Clear IO Throttle    ${VM}    nvme0


*** Keywords ***
Run Workload With Throttle
    [Documentation]    Start the workload (every I/O logged), throttle it to ${iops} IOPS ${LEAD} after
    ...    fio starts doing I/O, clear the throttle ${THROTTLED} later (unless ${clear} is false);
    ...    return the result and the VM's fault timeline.
    [Arguments]    ${iops}    ${clear}=${True}
    ${fio}    Start Timed Fio Job On VM    ${VM}    faults/fault_workload    runtime=${RUNTIME}
    ...    &{EVERY_IO}
    Wait Until Fio Does IO On VM    ${VM}
    Sleep    ${LEAD}
    Set IO Throttle    ${VM}    nvme0    iops=${iops}
    Namespace Throttle Should Be    ${iops}
    Sleep    ${THROTTLED}
    IF    ${clear}    Clear IO Throttle    ${VM}    nvme0
    ${result}    Wait For Timed Fio Job On VM    ${fio}
    ${events}    Get VM Fault Timeline    ${VM}
    RETURN    ${result}    ${events}

Namespace Throttle Should Be
    [Documentation]    Fail unless QEMU holds ${iops} as the IOPS limit of the namespace (0: none).
    [Arguments]    ${iops}
    ${limits}    Get IO Throttle    ${VM}    nvme0
    Should Be Equal As Integers    ${limits}[nvme0n1][iops-total]    ${iops}

Launch Throttle VM
    [Documentation]    One VM with one 256 MiB namespace for the suite, its throttle node put in
    ...    place up front (so that inserting it does not stall the first baseline).
    ${vm}    Launch NVMe VM    name=throttle    size=256M
    VAR    ${VM}    ${vm}    scope=SUITE
    Clear IO Throttle    ${VM}    nvme0
