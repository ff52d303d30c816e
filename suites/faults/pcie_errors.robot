*** Settings ***
Documentation    PCIe AER errors on the link of an NVMe controller while fio runs. QEMU's NVMe device
...              has no AER capability, so errors are injected at its PCIe root port, which reports
...              them to the guest's AER driver. Correctable and non-fatal errors are reported and
...              recovered with no I/O error and no I/O stall. A fatal error resets the link, which
...              QEMU's root port never reports active again: recovery fails and the namespace's I/O
...              hangs for good, which is this suite's negative proof (on a VM of its own).

Resource         ../../resources/faults.resource

Suite Setup      Launch AER VM

Test Tags        fault    aer    vm


*** Variables ***
${MAX_GAP_MS}    1000
${RUNTIME}       10
${VM}            ${None}


*** Test Cases ***
Correctable And Non Fatal Errors Are Recovered
    [Documentation]    A correctable and a non-fatal error during I/O: the guest reports each (and
    ...    recovers the non-fatal one); no I/O error, no gap above ${MAX_GAP_MS} ms.
    ${fio}    Start Timed Fio Job On VM    ${VM}    faults/fault_workload    runtime=${RUNTIME}    &{EVERY_IO}
    Wait Until Fio Does IO On VM    ${VM}
    Sleep    2s
    ${correctable}    Inject PCIe Error    ${VM}    nvme0    correctable
    Guest Should Report PCIe Error    ${VM}    ${correctable}
    ${non_fatal}    Inject PCIe Error    ${VM}    nvme0    non_fatal
    Guest Should Report PCIe Error    ${VM}    ${non_fatal}
    ${result}    Wait For Timed Fio Job On VM    ${fio}
    ${events}    Get VM Fault Timeline    ${VM}
    Fault Outage Should Be Within    ${result}    ${events}    max_gap_ms=${MAX_GAP_MS}    max_io_errors=0

A Fatal Error Fails The Recovery Verdict
    [Documentation]    Negative proof, a stronger fault: a fatal error on a VM of its own; the guest
    ...    reports it, its link reset fails, and `Guest Should Report PCIe Error` fails saying so.
    ${doomed}    Launch NVMe VM    name=aer-fatal    size=64M
    ${fatal}    Inject PCIe Error    ${doomed}    nvme0    fatal
    Run Keyword And Expect Error    *did not recover from the fatal PCIe error*device recovery failed*
    ...    Guest Should Report PCIe Error    ${doomed}    ${fatal}    timeout=15s
    [Teardown]    Power Cut VM    ${doomed}


*** Keywords ***
Launch AER VM
    [Documentation]    One VM with one 256 MiB namespace for the recoverable errors.
    ${vm}    Launch NVMe VM    name=aer    size=256M
    VAR    ${VM}    ${vm}    scope=SUITE
